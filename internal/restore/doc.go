// Package restore brings sets back: verified, parallel restores of databases and file trees,
// and Verify, which proves every object of a set is intact without a database.
package restore
