package usage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// AWS event-stream framing (application/vnd.amazon.eventstream), as used by
// ConverseStream and InvokeModelWithResponseStream:
//
//	prelude:  total length (uint32) | headers length (uint32) | prelude CRC32
//	headers:  name length (uint8) | name | value type (uint8) | value
//	payload
//	message CRC32 (over everything before it)
//
// All integers are big-endian and both checksums are IEEE CRC32.

const (
	preludeLen = 12
	crcLen     = 4
	// minMessageLen is a message with no headers and no payload.
	minMessageLen = preludeLen + crcLen
	// MaxMessageBytes bounds one event-stream message (AWS allows 16 MiB
	// of payload plus 128 KiB of headers).
	MaxMessageBytes = 16<<20 + 128<<10 + minMessageLen
)

// errFraming reports a malformed event stream; nothing after it is parsed.
var errFraming = errors.New("usage: malformed event stream")

// Message is one decoded event-stream message: its string headers (other
// header types are skipped) and its payload.
type Message struct {
	Headers map[string]string
	Payload []byte
}

// Decoder splits an event stream into messages incrementally: bytes may be
// fed in chunks cut anywhere, and only an incomplete trailing message is
// held back between calls.
type Decoder struct {
	buf []byte
	err error
}

// Feed appends p and calls emit for every complete message. After a framing
// error it returns that error for every later call and emits nothing more.
func (d *Decoder) Feed(p []byte, emit func(Message)) error {
	if d.err != nil {
		return d.err
	}
	d.buf = append(d.buf, p...)
	for {
		if len(d.buf) < preludeLen {
			break
		}
		total := binary.BigEndian.Uint32(d.buf[0:4])
		hlen := binary.BigEndian.Uint32(d.buf[4:8])
		if crc32.ChecksumIEEE(d.buf[0:8]) != binary.BigEndian.Uint32(d.buf[8:12]) {
			return d.fail("prelude checksum mismatch")
		}
		if total < minMessageLen || total > MaxMessageBytes || uint64(hlen) > uint64(total)-minMessageLen {
			return d.fail(fmt.Sprintf("bad lengths total=%d headers=%d", total, hlen))
		}
		if uint64(len(d.buf)) < uint64(total) {
			break
		}
		msg := d.buf[:total]
		if crc32.ChecksumIEEE(msg[:total-crcLen]) != binary.BigEndian.Uint32(msg[total-crcLen:]) {
			return d.fail("message checksum mismatch")
		}
		hdrs, err := parseHeaders(msg[preludeLen : preludeLen+hlen])
		if err != nil {
			return d.fail(err.Error())
		}
		payload := append([]byte(nil), msg[preludeLen+hlen:total-crcLen]...)
		d.buf = d.buf[total:]
		emit(Message{Headers: hdrs, Payload: payload})
	}
	if len(d.buf) == 0 {
		d.buf = nil // release the backing array between messages
	}
	return nil
}

// Pending is the number of bytes held back as an incomplete message.
func (d *Decoder) Pending() int { return len(d.buf) }

func (d *Decoder) fail(why string) error {
	d.err = fmt.Errorf("%w: %s", errFraming, why)
	d.buf = nil
	return d.err
}

// headerValueLen is the fixed size of each header value type; -1 means a
// two-byte length prefix follows (bytes, string).
var headerValueLen = [...]int{0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 6: -1, 7: -1, 8: 8, 9: 16}

func parseHeaders(b []byte) (map[string]string, error) {
	out := map[string]string{}
	for len(b) > 0 {
		n := int(b[0])
		if n == 0 || len(b) < 1+n+1 {
			return nil, errors.New("truncated header name")
		}
		name := string(b[1 : 1+n])
		typ := int(b[1+n])
		b = b[2+n:]
		if typ >= len(headerValueLen) {
			return nil, fmt.Errorf("unknown header type %d", typ)
		}
		size := headerValueLen[typ]
		if size < 0 {
			if len(b) < 2 {
				return nil, errors.New("truncated header value length")
			}
			size = int(binary.BigEndian.Uint16(b[:2]))
			b = b[2:]
			if len(b) < size {
				return nil, errors.New("truncated header value")
			}
			if typ == 7 {
				out[name] = string(b[:size])
			}
		} else if len(b) < size {
			return nil, errors.New("truncated header value")
		}
		b = b[size:]
	}
	return out, nil
}
