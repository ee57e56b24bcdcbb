package rpc

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/stream"
)

// TestWireNumbers pins what is on the wire: changing any of these breaks
// every peer of an older version. SPEC.md states them too.
func TestWireNumbers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want int
	}{
		{"sizeOfKind", sizeOfKind, 1},
		{"sizeOfLength", sizeOfLength, 4},
		{"headerSize", headerSize, 5},
		{"kindCall", int(kindCall), 0x50},
		{"kindResult", int(kindResult), 0x51},
		{"kindError", int(kindError), 0x52},
		{"kindCancel", int(kindCancel), 0x53},
		{"codeRemote", int(codeRemote), 1},
		{"codeUnknown", int(codeUnknown), 2},
		{"codeBusy", int(codeBusy), 3},
		{"codeTimeout", int(codeTimeout), 4},
		{"MaxNameLen", MaxNameLen, 256},
		{"MaxMessageLen", MaxMessageLen, 4096},
		{"maxDepth", maxDepth, 31},
		{"DefaultMaxFrameSize", DefaultMaxFrameSize, 1 << 20},
		{"DefaultMaxInflight", DefaultMaxInflight, 1024},
		{"DefaultMaxTimeout (s)", int(DefaultMaxTimeout / time.Second), 60},
		{"DefaultWriteTimeout (s)", int(DefaultWriteTimeout / time.Second), 10},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
}

// specFrames returns the frames of SPEC.md's example block, by line.
func specFrames(t *testing.T) (labels []string, frames [][]byte) {
	t.Helper()
	spec, err := os.ReadFile("SPEC.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(spec), "```frames\n")
	if !ok {
		t.Fatal("SPEC.md has no ```frames block")
	}
	block, _, _ = strings.Cut(block, "```")
	for line := range strings.Lines(block) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		b, err := hex.DecodeString(strings.Join(f[1:], ""))
		if err != nil {
			t.Fatalf("SPEC.md: %q: %v", line, err)
		}
		labels = append(labels, f[0])
		frames = append(frames, b)
	}
	return labels, frames
}

// TestSpecExamples checks that SPEC.md's example frames are what this
// package writes, and that it reads them back.
func TestSpecExamples(t *testing.T) {
	labels, frames := specFrames(t)
	mustFrame := func(k kind, body func([]byte) ([]byte, error)) []byte {
		f, err := appendFrame(nil, k, DefaultMaxFrameSize, body)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	args := func(vs ...any) []byte {
		b, err := appendArgs(nil, vs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	callFrame := func(c call) []byte {
		return mustFrame(kindCall, func(b []byte) ([]byte, error) { return appendCall(b, c), nil })
	}
	want := []struct {
		label string
		frame []byte
	}{
		{"call", callFrame(call{id: 1, name: "add", args: args(1, 2), timeout: 500, hasTimeout: true})},
		{"result", mustFrame(kindResult, func(b []byte) ([]byte, error) { return appendResult(b, 1, []byte{0x03}), nil })},
		{"call", callFrame(call{id: 2, name: "slow", args: args()})},
		{"error", mustFrame(kindError, func(b []byte) ([]byte, error) { return appendError(b, 2, codeRemote, "boom"), nil })},
		{"call", callFrame(call{id: 3, name: "slow", args: args()})},
		{"cancel", mustFrame(kindCancel, func(b []byte) ([]byte, error) { return appendCancel(b, 3), nil })},
	}
	if len(frames) != len(want) {
		t.Fatalf("SPEC.md has %d example frames, want %d", len(frames), len(want))
	}
	for i, w := range want {
		if labels[i] != w.label || !bytes.Equal(frames[i], w.frame) {
			t.Errorf("SPEC.md example %d:\n  %s % x\nwant\n  %s % x", i, labels[i], frames[i], w.label, w.frame)
		}
	}

	// Read back, the stream as a whole.
	fr := stream.NewFrameReader(bytes.NewReader(bytes.Join(frames, nil)), 0)
	var got []string
	for {
		k, body, err := fr.ReadFrame()
		if err != nil {
			break
		}
		got = append(got, describe(kind(k), body))
	}
	wantRead := []string{
		`call 1 "add" [1 2] timeout 500`,
		`result 1 3`,
		`call 2 "slow" []`,
		`error 2 code 1 "boom"`,
		`call 3 "slow" []`,
		`cancel 3`,
	}
	if diff := cmp.Diff(wantRead, got); diff != "" {
		t.Errorf("SPEC.md's frames read back (-want +got):\n%s", diff)
	}
}

// describe parses a frame's body by its kind and describes it in one
// line, or the error.
func describe(k kind, body []byte) string {
	var b strings.Builder
	switch k {
	case kindCall:
		c, err := parseCall(body)
		if err != nil {
			return err.Error()
		}
		args, err := decodeArgs(c.args)
		if err != nil {
			return err.Error()
		}
		fmtTo(&b, "call %d %q %v", c.id, c.name, args)
		if c.hasTimeout {
			fmtTo(&b, " timeout %d", c.timeout)
		}
	case kindResult:
		id, v, err := parseResult(body)
		if err != nil {
			return err.Error()
		}
		res, err := decodeValue(v)
		if err != nil {
			return err.Error()
		}
		fmtTo(&b, "result %d %v", id, res)
	case kindError:
		id, c, msg, err := parseError(body)
		if err != nil {
			return err.Error()
		}
		fmtTo(&b, "error %d code %d %q", id, c, msg)
	case kindCancel:
		id, err := parseCancel(body)
		if err != nil {
			return err.Error()
		}
		fmtTo(&b, "cancel %d", id)
	default:
		return "unknown " + k.String()
	}
	return b.String()
}

// TestParseMalformed: bodies that are not what their kind says, each
// refused with ErrMalformed and a reason.
func TestParseMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind kind
		body string // hex
		want string // in the error
	}{
		{"call not an array", kindCall, "01", "major type"},
		{"call of 2 elements", kindCall, "820163616464", "not 3 or 4"},
		{"call of 5 elements", kindCall, "85016361646480190001f6", "not 3 or 4"},
		{"call id 0", kindCall, "83006361646480", "id 0"},
		{"call id negative", kindCall, "83206361646480", "id"},
		{"call id a float", kindCall, "83f93c006361646480", "id"},
		{"call name bytes", kindCall, "83014361646480", "name"},
		{"call name empty", kindCall, "83016080", "empty method name"},
		{"call name not UTF-8", kindCall, "830161ff80", "not UTF-8"},
		{"call args not an array", kindCall, "830163616464a0", "arguments"},
		{"call args too many", kindCall, "8301636164649a0000ffff", "cannot fit"},
		{"call arg a tag", kindCall, "83016361646481c101", "argument 0"},
		{"call arg NaN", kindCall, "83016361646481f97e00", "not a finite number"},
		{"call arg undefined", kindCall, "83016361646481f7", "simple value"},
		{"call arg uint over int64", kindCall, "83016361646481 1bffffffffffffffff", "does not fit in int64"},
		{"call arg duplicate keys", kindCall, "83016361646481 a2 6161 01 6161 02", "duplicate map key"},
		{"call arg text not UTF-8", kindCall, "83016361646481 61ff", "UTF-8"},
		{"call arg indefinite", kindCall, "83016361646481 9fff", "indefinite"},
		{"call timeout negative", kindCall, "840163616464 80 20", "timeout"},
		{"call trailing bytes", kindCall, "830163616464 80 00", "bytes after"},
		{"call truncated", kindCall, "83016361", "end"},
		{"result of 1", kindResult, "8101", "not 2"},
		{"result id 0", kindResult, "820001", "id 0"},
		{"result value missing", kindResult, "8201", "result"},
		{"result value a tag", kindResult, "8201c101", "result"},
		{"result value NaN", kindResult, "8201fb7ff8000000000000", "not a finite number"},
		{"result trailing", kindResult, "82010100", "bytes after"},
		{"error of 2", kindError, "820201", "not 3"},
		{"error code negative", kindError, "83012060", "code"},
		{"error message bytes", kindError, "83010140", "message"},
		{"error message not UTF-8", kindError, "83010161ff", "not UTF-8"},
		{"cancel of 0", kindCancel, "80", "not 1"},
		{"cancel id text", kindCancel, "816131", "id"},
		{"cancel id 0", kindCancel, "8100", "id 0"},
		{"cancel trailing", kindCancel, "810101", "bytes after"},
	} {
		body, err := hex.DecodeString(strings.ReplaceAll(tc.body, " ", ""))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := describe(tc.kind, body)
		if !strings.Contains(got, "rpc: malformed frame") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %s body %x: %s, want a malformed-frame error containing %q", tc.name, tc.kind, body, got, tc.want)
		}
	}
}

// TestParseErrorsWrap: the parse errors wrap ErrMalformed, and
// ErrInvalidValue for a value that is not one.
func TestParseErrorsWrap(t *testing.T) {
	_, err := parseCall([]byte{0x83, 0x01, 0x61, 'a', 0x81, 0xf7})
	if !errors.Is(err, ErrMalformed) || !errors.Is(err, ErrInvalidValue) {
		t.Errorf("parseCall(undefined argument) = %v, want ErrMalformed and ErrInvalidValue", err)
	}
	_, _, err = parseResult([]byte{0x82, 0x01, 0xff})
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("parseResult(break) = %v, want ErrMalformed", err)
	}
}

// TestTruncateMessage: cut at a character boundary, within the limit,
// valid UTF-8.
func TestTruncateMessage(t *testing.T) {
	for _, tc := range []struct {
		msg   string
		limit int
		want  string
	}{
		{"short", 10, "short"},
		{"exactly 10", 10, "exactly 10"},
		{"eleven long", 10, "eleven ..."},
		{"ééééé", 8, "éé..."}, // 2 bytes each: 5 bytes fit, a character is not split
		{"bad \xff", 10, "bad \uFFFD"},
		{"abc", 2, "..."}, // a limit shorter than the ellipsis: the ellipsis alone
	} {
		got := truncateMessage(tc.msg, tc.limit)
		if tc.limit >= 3 && len(got) > tc.limit {
			t.Errorf("truncateMessage(%q, %d) = %q, longer than the limit", tc.msg, tc.limit, got)
		}
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("truncateMessage(%q, %d) = %q, want %q", tc.msg, tc.limit, got, tc.want)
		}
	}
}

// TestAppendFrameLimit: a body over the limit leaves dst as it was.
func TestAppendFrameLimit(t *testing.T) {
	dst := []byte("prefix")
	got, err := appendFrame(dst, kindResult, 4, func(b []byte) ([]byte, error) {
		return append(b, 1, 2, 3, 4, 5), nil
	})
	if !errors.Is(err, stream.ErrFrameTooLarge) || string(got) != "prefix" {
		t.Errorf("appendFrame of 5 bytes, limit 4 = %q, %v; want \"prefix\" and ErrFrameTooLarge", got, err)
	}
	got, err = appendFrame(dst, kindResult, 5, func(b []byte) ([]byte, error) {
		return append(b, 1, 2, 3, 4, 5), nil
	})
	if err != nil || !bytes.Equal(got, []byte("prefix\x51\x00\x00\x00\x05\x01\x02\x03\x04\x05")) {
		t.Errorf("appendFrame of 5 bytes, limit 5 = %x, %v", got, err)
	}
}

func fmtTo(b *strings.Builder, format string, args ...any) { fmt.Fprintf(b, format, args...) }
