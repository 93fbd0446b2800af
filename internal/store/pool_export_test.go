package store

// PoolSize is the connection pool's cap as database/sql holds it.
func PoolSize(s *Store) int { return s.db.Stats().MaxOpenConnections }
