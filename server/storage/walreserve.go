package storage

import (
	"context"
	"database/sql"
	"os"
)

// walReserveFrames is how many frames ReserveWAL grows the WAL file to,
// with zeros: a little more than SQLite's automatic checkpoint
// threshold (1,000 pages), after which a completed checkpoint makes the next
// write restart the log at its start.
const walReserveFrames = 1100

// ReserveWAL grows the WAL file ahead of use; the server calls it when it
// starts serving (a command that opens the database, or builds the server,
// to change one thing does not need it). A server that has run a while
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
// frames meanwhile; the file is written only past its end. A failure
// costs only speed (a full disk, a read-only file).
func (db *DB) ReserveWAL(ctx context.Context) error {
	// The write transaction holds the write lock (BEGIN IMMEDIATE) and
	// writes nothing: an empty commit adds no frame.
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		var pageSize int64
		if err := tx.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&pageSize); err != nil {
			return err
		}
		want := 32 + walReserveFrames*(24+pageSize) // header, then frames of header and page
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
