package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"maunium.net/go/mautrix"
)

// Listener wraps a plain TCP listener so that the few answers net/http
// writes itself, before any handler runs, are Matrix JSON errors like every
// other answer: 400 for a malformed request line or header, 431 for headers
// over http.Server.MaxHeaderBytes, 501 for an unknown transfer encoding.
// net/http writes those straight to the connection in one fixed form (a
// status line, a text/plain content type, "Connection: close" and a short
// line of text as the body); the wrapper recognises exactly that form in a
// connection's writes and replaces it. Responses from handlers never have
// it (they carry a Date header and a length).
//
// Only for plain TCP: net/http looks for *tls.Conn on TLS listeners.
func Listener(ln net.Listener) net.Listener { return matrixErrorListener{ln} }

type matrixErrorListener struct{ net.Listener }

func (l matrixErrorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &matrixErrorConn{Conn: c}, nil
}

// cannedHeaders are the headers net/http's own error answers carry
// (errorHeaders in net/http's server.go).
const cannedHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

type matrixErrorConn struct{ net.Conn }

// NetConn is the wrapped connection (as tls.Conn's), so that a server can
// find the *tls.Conn inside.
func (c *matrixErrorConn) NetConn() net.Conn { return c.Conn }

func (c *matrixErrorConn) Write(p []byte) (int, error) {
	if body, ok := rewriteCanned(p); ok {
		if _, err := c.Conn.Write(body); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// ReadFrom keeps sendfile for media downloads (net/http uses it when the
// connection has it).
func (c *matrixErrorConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(c.Conn, r)
}

// CloseWrite lets net/http half-close after an error answer, as it does
// on a bare *net.TCPConn.
func (c *matrixErrorConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// rewriteCanned turns one of net/http's own error answers into the same
// status with a Matrix error body.
func rewriteCanned(p []byte) ([]byte, bool) {
	rest, ok := bytes.CutPrefix(p, []byte("HTTP/1.1 "))
	if !ok {
		return nil, false
	}
	status, after, ok := bytes.Cut(rest, []byte(cannedHeaders))
	if !ok || len(after) > 512 || bytes.ContainsAny(after, "\r\n") {
		return nil, false
	}
	code, err := strconv.Atoi(string(status[:min(3, len(status))]))
	if err != nil || code < 400 || code > 599 {
		return nil, false
	}
	var e mautrix.RespError
	switch code {
	case http.StatusBadRequest:
		e = mautrix.MUnrecognized.WithMessage("Unrecognized request: " + strings.TrimPrefix(string(after), "400 "))
	case http.StatusRequestHeaderFieldsTooLarge:
		e = mautrix.MTooLarge.WithMessage("The request's headers are too large")
	default:
		e = mautrix.MUnrecognized.WithMessage("Unrecognized request: " + string(after))
	}
	body, err := json.Marshal(&e)
	if err != nil {
		return nil, false
	}
	var out bytes.Buffer
	out.WriteString("HTTP/1.1 " + strconv.Itoa(code) + " " + http.StatusText(code))
	out.WriteString("\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: ")
	out.WriteString(strconv.Itoa(len(body)))
	out.WriteString("\r\n")
	for k, v := range corsHeaders {
		out.WriteString(k + ": " + v + "\r\n")
	}
	out.WriteString("\r\n")
	out.Write(body)
	return out.Bytes(), true
}
