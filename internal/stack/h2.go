package stack

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// H2Request is one HTTP/2 request written frame by frame, so that a test
// controls what net/http would not let it: request trailers right after the
// headers, or an :authority of its choosing.
type H2Request struct {
	// Headers are the request's header fields in order, pseudo-headers
	// (:method, :scheme, :path, :authority) first.
	Headers [][2]string
	// Body is sent in one DATA frame; nil sends no DATA frame at all.
	Body []byte
	// Trailers, when not empty, end the stream in a second HEADERS frame.
	Trailers [][2]string
}

// H2Do sends r as stream 1 on conn (already connected, TLS done) with the
// HTTP/2 prior-knowledge preface and returns the response status and body.
// It gives up after timeout.
func H2Do(conn net.Conn, r H2Request, timeout time.Duration) (int, []byte, error) {
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return 0, nil, fmt.Errorf("h2: deadline: %w", err)
	}
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		return 0, nil, fmt.Errorf("h2: preface: %w", err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		return 0, nil, fmt.Errorf("h2: settings: %w", err)
	}
	block := func(fields [][2]string) ([]byte, error) {
		var buf bytes.Buffer
		enc := hpack.NewEncoder(&buf)
		for _, f := range fields {
			if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
				return nil, err
			}
		}
		return buf.Bytes(), nil
	}
	const stream = 1
	last := r.Body == nil && len(r.Trailers) == 0
	hb, err := block(r.Headers)
	if err != nil {
		return 0, nil, fmt.Errorf("h2: encode headers: %w", err)
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, EndHeaders: true, EndStream: last, BlockFragment: hb}); err != nil {
		return 0, nil, fmt.Errorf("h2: headers: %w", err)
	}
	if r.Body != nil {
		if err := fr.WriteData(stream, len(r.Trailers) == 0, r.Body); err != nil {
			return 0, nil, fmt.Errorf("h2: data: %w", err)
		}
	}
	if len(r.Trailers) > 0 {
		tb, err := block(r.Trailers)
		if err != nil {
			return 0, nil, fmt.Errorf("h2: encode trailers: %w", err)
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, EndHeaders: true, EndStream: true, BlockFragment: tb}); err != nil {
			return 0, nil, fmt.Errorf("h2: trailers: %w", err)
		}
	}
	status, body := 0, []byte(nil)
	dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == ":status" {
			status, _ = strconv.Atoi(f.Value)
		}
	})
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return status, body, fmt.Errorf("h2: read: %w", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := fr.WriteSettingsAck(); err != nil {
					return status, body, fmt.Errorf("h2: settings ack: %w", err)
				}
			}
		case *http2.HeadersFrame:
			if f.StreamID != stream {
				continue
			}
			if _, err := dec.Write(f.HeaderBlockFragment()); err != nil {
				return status, body, fmt.Errorf("h2: decode: %w", err)
			}
			if f.StreamEnded() {
				return status, body, nil
			}
		case *http2.DataFrame:
			if f.StreamID != stream {
				continue
			}
			body = append(body, f.Data()...)
			if f.StreamEnded() {
				return status, body, nil
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == stream {
				return status, body, fmt.Errorf("h2: stream reset: %v", f.ErrCode)
			}
		case *http2.GoAwayFrame:
			return status, body, fmt.Errorf("h2: goaway: %v", f.ErrCode)
		}
	}
}
