package storage

import "context"

// queryColumn runs a query whose rows hold a single column and returns the
// values in order: the shape of most "list the IDs of …" lookups.
func queryColumn[T any](ctx context.Context, q execer, query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
