package usage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// encode frames messages with the AWS SDK's own encoder.
func encode(t testing.TB, msgs ...eventstream.Message) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := eventstream.NewEncoder()
	for _, m := range msgs {
		if err := enc.Encode(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func event(typ, payload string) eventstream.Message {
	var m eventstream.Message
	m.Headers.Set(":message-type", eventstream.StringValue("event"))
	m.Headers.Set(":event-type", eventstream.StringValue(typ))
	m.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	m.Headers.Set("flag", eventstream.BoolValue(true))
	m.Headers.Set("n", eventstream.Int64Value(7))
	m.Headers.Set("raw", eventstream.BytesValue([]byte{1, 2, 3}))
	m.Payload = []byte(payload)
	return m
}

func TestDecoderChunkBoundaries(t *testing.T) {
	stream := encode(t, event("messageStart", `{"role":"assistant"}`), event("contentBlockDelta", `{"delta":{"text":"hi"}}`), event("metadata", `{"usage":{"inputTokens":3}}`))
	for _, size := range []int{1, 2, 3, 7, 12, 13, 50, len(stream)} {
		var d Decoder
		var got []Message
		for i := 0; i < len(stream); i += size {
			if err := d.Feed(stream[i:min(i+size, len(stream))], func(m Message) { got = append(got, m) }); err != nil {
				t.Fatalf("size %d: %v", size, err)
			}
		}
		if len(got) != 3 || d.Pending() != 0 {
			t.Fatalf("size %d: %d messages, %d pending", size, len(got), d.Pending())
		}
		if got[2].Headers[":event-type"] != "metadata" || string(got[2].Payload) != `{"usage":{"inputTokens":3}}` || got[0].Headers[":message-type"] != "event" {
			t.Fatalf("size %d: %+v", size, got)
		}
		if _, ok := got[0].Headers["flag"]; ok {
			t.Fatalf("non-string header kept: %+v", got[0].Headers)
		}
	}
}

func TestDecoderRejectsCorruption(t *testing.T) {
	good := encode(t, event("chunk", `{"bytes":"e30="}`))
	badPrelude := bytes.Clone(good)
	badPrelude[9] ^= 0xff
	badMessage := bytes.Clone(good)
	badMessage[len(badMessage)-6] ^= 0xff
	huge := make([]byte, 12)
	binary.BigEndian.PutUint32(huge[0:4], MaxMessageBytes+1)
	binary.BigEndian.PutUint32(huge[8:12], crc32.ChecksumIEEE(huge[0:8]))
	headersTooLong := make([]byte, 16)
	binary.BigEndian.PutUint32(headersTooLong[0:4], 16)
	binary.BigEndian.PutUint32(headersTooLong[4:8], 1)
	binary.BigEndian.PutUint32(headersTooLong[8:12], crc32.ChecksumIEEE(headersTooLong[0:8]))
	for name, in := range map[string][]byte{"prelude crc": badPrelude, "message crc": badMessage, "too large": huge, "headers too long": headersTooLong} {
		var d Decoder
		n := 0
		err := d.Feed(in, func(Message) { n++ })
		if !errors.Is(err, errFraming) || n != 0 {
			t.Fatalf("%s: err %v, %d messages", name, err, n)
		}
		// Later input is ignored.
		if err := d.Feed(good, func(Message) { n++ }); !errors.Is(err, errFraming) || n != 0 {
			t.Fatalf("%s: decoder recovered: %v %d", name, err, n)
		}
	}
}

func FuzzDecoder(f *testing.F) {
	f.Add(encode(f, event("metadata", `{"usage":{"inputTokens":3,"outputTokens":4}}`)), 5)
	f.Add([]byte{0, 0, 0, 16, 0, 0, 0, 0}, 1)
	f.Fuzz(func(t *testing.T, data []byte, cut int) {
		if cut <= 0 {
			cut = 1
		}
		var whole, parts []Message
		var d1, d2 Decoder
		err1 := d1.Feed(data, func(m Message) { whole = append(whole, m) })
		var err2 error
		for i := 0; i < len(data) && err2 == nil; i += cut {
			err2 = d2.Feed(data[i:min(i+cut, len(data))], func(m Message) { parts = append(parts, m) })
		}
		// Chunking never changes what is decoded.
		if (err1 == nil) != (err2 == nil) || len(whole) != len(parts) {
			t.Fatalf("whole: %d msgs err %v; chunked by %d: %d msgs err %v", len(whole), err1, cut, len(parts), err2)
		}
		for i := range whole {
			if !bytes.Equal(whole[i].Payload, parts[i].Payload) {
				t.Fatalf("message %d differs", i)
			}
		}
	})
}
