package store

import (
	"crypto/rand"
	"strings"
)

// IDLength is the length of a request ID.
const IDLength = 10

// NewID returns an unguessable request ID: 10 lowercase base32 characters
// (50 bits) from crypto/rand. Chat buttons carry only this ID, so it must not
// be predictable.
func NewID() string {
	// rand.Text is 26 base32 characters of crypto/rand output.
	return strings.ToLower(rand.Text()[:IDLength])
}
