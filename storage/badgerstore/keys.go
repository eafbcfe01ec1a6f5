package badgerstore

import "github.com/caddy-device-flow/caddy-device-flow/flow"

// Every key is
//
//	namespace (8 bytes) ‖ kind (1 byte) ‖ name
//
// namespace is the first 8 bytes of the SHA-256 of the Store's namespace
// string: handlers that share one database each get their own key space,
// and as every namespace is as long as every other, no key of one can
// start another's. kind and name:
//
//	'd' ‖ user code     a device record (package record), until ExpiresAt + Grace
//	'l' ‖ login key     a flow.Login as JSON, until its ExpiresAt
//	'c' ‖ counter key   a counter, 8 bytes big-endian, until its window ends
//	's' ‖ secret name   a server secret, its bytes, for good
//
// The device code is neither a key nor stored: a record holds its hash.
const (
	kindDevice  = 'd'
	kindLogin   = 'l'
	kindCounter = 'c'
	kindSecret  = 's'
)

type namespace [8]byte

func newNamespace(name string) namespace { return namespace(flow.NamespaceID(name)) }

func (ns namespace) key(kind byte, name string) []byte {
	k := make([]byte, 0, len(ns)+1+len(name))
	k = append(k, ns[:]...)
	k = append(k, kind)
	return append(k, name...)
}
