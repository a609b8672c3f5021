package media

import (
	"bytes"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"
)

// defaultContentType is the spec's type for uploads that name none.
const defaultContentType = "application/octet-stream"

// NormalizeContentType cleans an uploader's Content-Type: lower-case type,
// only the charset parameter kept (for text), and the spec's default for a
// missing or unparsable one.
func NormalizeContentType(ct string) string {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !strings.Contains(mt, "/") || strings.ContainsAny(mt, "\r\n") {
		return defaultContentType
	}
	if cs := params["charset"]; cs != "" && strings.HasPrefix(mt, "text/") {
		if out := mime.FormatMediaType(mt, map[string]string{"charset": strings.ToLower(cs)}); out != "" {
			return out
		}
	}
	return mt
}

// baseType is the media type without parameters.
func baseType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return defaultContentType
	}
	return mt
}

// Sniff says what a file's first bytes look like, whatever its uploader
// claimed. Besides http.DetectContentType's answer it recognises SVG, which
// can carry scripts and is not in DetectContentType's table.
func Sniff(head []byte) string {
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")), "\t\n\x0c\r ")
	if len(trimmed) >= 4 && bytes.EqualFold(trimmed[:4], []byte("<svg")) {
		return "image/svg+xml"
	}
	return baseType(http.DetectContentType(head))
}

// activeSniffed are sniffed types a browser could run as a document or
// script: content that looks like one is never served inline, whatever
// type its uploader gave it.
var activeSniffed = map[string]bool{
	"text/html":     true,
	"text/xml":      true,
	"image/svg+xml": true,
}

// inlineTypes are the spec's types that are safe to show inline
// ("Serving inline content").
var inlineTypes = map[string]bool{
	"text/css": true, "text/plain": true, "text/csv": true,
	"application/json": true, "application/ld+json": true,
	"image/jpeg": true, "image/gif": true, "image/png": true, "image/apng": true, "image/webp": true, "image/avif": true,
	"video/mp4": true, "video/webm": true, "video/ogg": true, "video/quicktime": true,
	"audio/mp4": true, "audio/webm": true, "audio/aac": true, "audio/mpeg": true, "audio/ogg": true,
	"audio/wave": true, "audio/wav": true, "audio/x-wav": true, "audio/x-pn-wav": true, "audio/flac": true, "audio/x-flac": true,
}

// Inline reports whether content of type contentType whose bytes sniff as
// sniffed may be served with Content-Disposition: inline: its type must be
// in the spec's safe list, and its bytes must not look like HTML, XML or
// SVG (a page uploaded as text/plain is still offered as a download).
func Inline(contentType, sniffed string) bool {
	return inlineTypes[baseType(contentType)] && !activeSniffed[sniffed]
}

// ContentDisposition builds the header: inline or attachment, with the
// file name as a quoted string when it is plain ASCII and as an RFC 5987
// extended value (filename* in UTF-8, percent-encoded) otherwise, as
// RFC 6266 says.
func ContentDisposition(inline bool, filename string) string {
	kind := "attachment"
	if inline {
		kind = "inline"
	}
	if filename == "" {
		return kind
	}
	if plainASCII(filename) {
		return kind + `; filename="` + filename + `"`
	}
	return kind + "; filename*=utf-8''" + rfc5987Escape(filename)
}

// plainASCII is printable ASCII without the quote and backslash, which a
// quoted-string would need escaped (and some browsers mishandle escapes).
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// rfc5987Escape percent-encodes every byte outside RFC 5987's attr-char.
func rfc5987Escape(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		const hexDigits = "0123456789ABCDEF"
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}
