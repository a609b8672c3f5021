package backup

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
)

// The seal ends the compressed stream of every backup this Palpo makes
// (see Manifest.Sealed). The gzip CRC, the tar header checksums and the
// manifest's SHA-256s all cover the decompressed content only, and
// deflate has many encodings of the same content: a back-reference's
// distance into a run of zeros or a repeated pattern can change and still
// copy the same bytes, and the gzip header's time, flags and OS bytes are
// read by nothing. So a changed byte could leave every checksum matching.
// The seal is the SHA-256 of every byte of the stream before it, so any
// change to those bytes, or to the seal itself, is found.
//
// It is a second gzip member that holds nothing, its header's comment
// carrying the checksum: gzip tools decompress it to nothing, so the
// archive stays an ordinary .tar.gz, and older Palpos read past it.
// Its bytes are fixed here rather than left to a gzip writer, so a
// reader checks it by building the one seal that fits and comparing.

// sealComment begins the seal's comment; the hex checksum follows.
const sealComment = "palpo-backup-seal sha256="

// sealBytes is the seal for a stream whose bytes before it have the
// SHA-256 sum.
func sealBytes(sum []byte) []byte {
	b := []byte{
		0x1f, 0x8b, // gzip
		8,          // deflate
		0x10,       // FCOMMENT
		0, 0, 0, 0, // no modification time
		0,    // no extra flags
		0xff, // unknown OS
	}
	b = append(b, sealComment...)
	b = hex.AppendEncode(b, sum)
	b = append(b, 0)          // the comment's end
	b = append(b, 0x03, 0x00) // an empty final deflate block
	b = append(b, 0, 0, 0, 0) // the CRC-32 of nothing
	b = append(b, 0, 0, 0, 0) // its size
	return b
}

// sealLen is the length of every seal.
var sealLen = len(sealBytes(make([]byte, sha256.Size)))

// sealingWriter passes a compressed stream on, hashing it for its seal.
type sealingWriter struct {
	w io.Writer
	h hash.Hash
}

func newSealingWriter(w io.Writer) *sealingWriter {
	return &sealingWriter{w: w, h: sha256.New()}
}

func (s *sealingWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.h.Write(p[:n])
	return n, err
}

// seal writes the seal of everything written so far.
func (s *sealingWriter) seal() error {
	_, err := s.w.Write(sealBytes(s.h.Sum(nil)))
	return err
}

// sealReader hashes the bytes a gzip reader takes from r. It is an
// io.ByteReader, so the gzip reader takes exactly the bytes of its member
// and no more (it would otherwise read ahead through a buffer of its own),
// leaving what follows in r.
type sealReader struct {
	r       *bufio.Reader
	h       hash.Hash
	pending []byte // taken by ReadByte, not yet hashed
}

func newSealReader(r *bufio.Reader) *sealReader {
	return &sealReader{r: r, h: sha256.New(), pending: make([]byte, 0, 4096)}
}

func (s *sealReader) flush() {
	s.h.Write(s.pending)
	s.pending = s.pending[:0]
}

func (s *sealReader) Read(p []byte) (int, error) {
	s.flush()
	n, err := s.r.Read(p)
	s.h.Write(p[:n])
	return n, err
}

func (s *sealReader) ReadByte() (byte, error) {
	b, err := s.r.ReadByte()
	if err == nil {
		if len(s.pending) == cap(s.pending) {
			s.flush()
		}
		s.pending = append(s.pending, b)
	}
	return b, err
}

// sum is the SHA-256 of the bytes taken so far.
func (s *sealReader) sum() []byte {
	s.flush()
	return s.h.Sum(nil)
}
