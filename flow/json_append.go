package flow

import (
	"strconv"
	"unicode/utf8"
)

// The device authorization response is the one JSON body built per
// request (the others are constant or rare); encoding/json's reflection
// and allocations were ~1.4 µs of an issue's ~60 here, so it is appended
// by hand. TestDeviceAuthorizationJSON checks that the bytes are
// encoding/json's, for any strings.

func (a *deviceAuthorization) appendJSON(b []byte) []byte {
	b = append(b, `{"device_code":`...)
	b = appendJSONString(b, a.DeviceCode)
	b = append(b, `,"user_code":`...)
	b = appendJSONString(b, a.UserCode)
	b = append(b, `,"verification_uri":`...)
	b = appendJSONString(b, a.VerificationURI)
	b = append(b, `,"verification_uri_complete":`...)
	b = appendJSONString(b, a.VerificationURIComplete)
	b = append(b, `,"expires_in":`...)
	b = strconv.AppendInt(b, a.ExpiresIn, 10)
	b = append(b, `,"interval":`...)
	b = strconv.AppendInt(b, a.Interval, 10)
	return append(b, '}')
}

// appendJSONString appends s as encoding/json writes a string (HTML-safe:
// <, > and & escaped too; invalid UTF-8 as U+FFFD; U+2028 and U+2029
// escaped).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
