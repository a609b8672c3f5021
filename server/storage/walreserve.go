package storage

import (
	"context"
	"database/sql"
	"os"
)

// walReserveFrames is how many frames the WAL file is grown to, with zeros,
// when the database opens: a little more than SQLite's automatic checkpoint
// threshold (1,000 pages), after which a completed checkpoint makes the next
// write restart the log at its start.
const walReserveFrames = 1100

// reserveWAL grows the WAL file ahead of use. A server that has run a while
// rewrites the same few megabytes of WAL in place, but after each start
// (Close truncates the WAL) every commit appended to it until the first
// checkpoint, and an fsync of a file that grew must also make the new size
// durable: a journal commit of the file system on top of the data. On the
// disk measured that was 1.0 ms per idle commit instead of 0.55, the
// largest part of a message's wake-up. So the file is grown at once.
//
// Zeros are never taken for a transaction: SQLite reads the WAL frame by
// frame while each one's salt (random, chosen at every restart of the log)
// and cumulative checksum match, and an all-zero header or frame matches
// none. The write lock is held while the file grows, so no commit writes
// frames meanwhile; the file is written only past its end. A failure is
// only slower commits, so the caller logs nothing and goes on.
func (db *DB) reserveWAL(ctx context.Context, pageSize int64) error {
	want := 32 + walReserveFrames*(24+pageSize) // header, then frames of header and page
	// The write transaction holds the write lock (BEGIN IMMEDIATE) and
	// writes nothing: an empty commit adds no frame.
	return db.writeTx(ctx, func(*sql.Tx) error {
		// SQLite opened (and if needed created) the WAL when the
		// transaction began; it never takes locks on it, so opening and
		// closing another descriptor here cannot drop any of SQLite's.
		f, err := os.OpenFile(db.path+"-wal", os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		info, err := f.Stat()
		if err != nil || info.Size() >= want {
			return err
		}
		zeros := make([]byte, 64<<10)
		for off := info.Size(); off < want; off += int64(len(zeros)) {
			n := min(int64(len(zeros)), want-off)
			if _, err := f.WriteAt(zeros[:n], off); err != nil {
				return err
			}
		}
		return f.Sync()
	})
}
