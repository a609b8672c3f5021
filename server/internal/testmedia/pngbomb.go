// Package testmedia makes media for tests of the media repository.
package testmedia

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
)

// PNGBomb is a valid 1-bit greyscale PNG of w×h zero pixels: a few hundred
// kilobytes that decode to w×h bytes (1.6 GB at 40,000²).
func PNGBomb(w, h int) []byte {
	var out bytes.Buffer
	out.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(data)))
		out.Write(n[:])
		out.WriteString(typ)
		out.Write(data)
		binary.BigEndian.PutUint32(n[:], crc32.ChecksumIEEE(append([]byte(typ), data...)))
		out.Write(n[:])
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8] = 1 // bit depth 1, colour type 0 (greyscale)
	chunk("IHDR", ihdr)
	var idat bytes.Buffer
	idat.Write([]byte{0x78, 0xda}) // zlib header
	// Deflating 1.6 GB of zeros takes seconds, so one run of rows is
	// compressed, ended with a sync flush (byte-aligned, not final), and
	// repeated: deflate blocks concatenate. An empty final block and the
	// Adler-32 of the zeros end the stream.
	rowLen := 1 + (w+7)/8 // filter byte + packed 1-bit pixels, all zero
	piece := func(rows int) []byte {
		var b bytes.Buffer
		fw, _ := flate.NewWriter(&b, flate.BestCompression)
		fw.Write(make([]byte, rows*rowLen))
		fw.Flush()
		return b.Bytes()
	}
	const run = 1000
	full := piece(run)
	for range h / run {
		idat.Write(full)
	}
	if h%run != 0 {
		idat.Write(piece(h % run))
	}
	idat.Write([]byte{0x03, 0x00})
	n := uint64(h) * uint64(rowLen)
	binary.Write(&idat, binary.BigEndian, uint32(n%65521)<<16|1)
	chunk("IDAT", idat.Bytes())
	chunk("IEND", nil)
	return out.Bytes()
}
