package projections

// SealOneSQL is the statement that seals one event (at $1), the one a
// failed batch falls back to.
const SealOneSQL = sealSQL
