package stream

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// jsonSeeds are lines JavaScript scuttlebutt wrote (JS-SCUTTLEBUTT.md's
// captures) and a few edge cases.
var jsonSeeds = []string{
	`{"id":"A","clock":{"A":1795386115196}}` + "\n" + `[["k","v"],1795386115196,"A"]` + "\n" + `"SYNC"` + "\n",
	`{"id":"A","clock":{},"meta":{"role":"server","v":1}}` + "\n",
	`[["y",{"deep":true}],1795385885028.001,"A"]` + "\n" + `[["x",null],1795385885028.002,"A"]` + "\n",
	`[["msg","two",{"x":1},3],1795385884276.001,"A"]` + "\r\n",
	`[["k","signed"],1795385893601,"lk5RPxZJ4InN3AxwVYiqIOHHpQs=","bGeJz3pJ4IBj"]` + "\n",
	`[["d",4],6,"R","extra","fields"]` + "\n" + `"SYNC"` + "\n" + `"SYNC"` + "\n",
	`[["big",1],1e300,"R"]` + "\n",
	`["\u00e9\ud83d\ude00\ud800",1.5e-7,"A"]`,
	`[[1,-0,9223372036854775808,[],{}],1,"A"]` + "\n\n",
	"{\"id\":\"R\"}\n",
}

// FuzzJSONLinesDecode: the decoder never panics, and whatever it accepts
// re-encodes to lines that decode to the same messages and re-encode to
// the same bytes.
func FuzzJSONLinesDecode(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, asModel bool) {
		var doc scuttlebutt.Document = newLogDoc(t, "F")
		if asModel {
			doc = newModelAt(t, "F", 1)
		}
		ms, _ := decodeFrom(doc, bytes.NewReader(data), 1<<16)
		for _, m := range ms {
			enc := JSONLines.newEncoder(doc, 1<<20, nil)
			line, err := enc.appendMessage(nil, m)
			if err != nil {
				t.Fatalf("%s decoded from %q does not encode: %v", m, data, err)
			}
			again, err := decodeFrom(doc, bytes.NewReader(line), 1<<20)
			if err != nil {
				t.Fatalf("%q (from %q) does not decode: %v", line, data, err)
			}
			if m.Kind == scuttlebutt.MsgSync {
				continue
			}
			if len(again) != 1 || again[0].Kind != m.Kind {
				t.Fatalf("%q decodes as %v, want one %s", line, again, m.Kind)
			}
			a := again[0]
			switch m.Kind {
			case scuttlebutt.MsgHello:
				if a.Hello.ID != m.Hello.ID || !cmp.Equal(a.Hello.Clock, m.Hello.Clock) {
					t.Fatalf("%q: hello %v became %v", line, m.Hello, a.Hello)
				}
			case scuttlebutt.MsgUpdates:
				for i, u := range m.Updates {
					v := a.Updates[i]
					if u.Source != v.Source || u.Timestamp != v.Timestamp {
						t.Fatalf("%q: update %s became %s", line, u, v)
					}
				}
			}
			// One round makes the canonical form: the next is the same.
			line2, err := JSONLines.newEncoder(doc, 1<<20, nil).appendMessage(nil, a)
			if err != nil || !bytes.Equal(line, line2) {
				t.Fatalf("re-encoding is not stable:\n%q\n%q (%v)", line, line2, err)
			}
		}
	})
}

// FuzzJSONValue checks the JSON parser against encoding/json: what it
// accepts is valid JSON of the same value, and what it refuses of valid
// JSON, it refuses for a documented reason.
func FuzzJSONValue(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5,"x",true,false,null]}`, `"\ud83d\ude00"`, `-0.0e+1`, `1e400`, `{"a":1,"a":2}`, "\"\xff\"", `[[[]]]`, `  7  `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := jsonParser{b: data}
		item, err := p.value(nil, 0)
		if err == nil {
			err = p.end()
		}
		if err != nil {
			if !json.Valid(data) {
				return
			}
			for _, ok := range []string{"duplicate key", "not UTF-8", "nested deeper", "out of range"} {
				if strings.Contains(err.Error(), ok) {
					return
				}
			}
			t.Fatalf("refused valid JSON %q: %v", data, err)
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		text, rest, err := appendCBORAsJSON(nil, item, 0)
		if err != nil || len(rest) != 0 {
			t.Fatalf("%q: CBOR %x does not go back to JSON: %v", data, item, err)
		}
		var want, got any
		if err := json.Unmarshal(data, &want); err != nil {
			return // a number beyond float64 that encoding/json refuses
		}
		if err := json.Unmarshal(text, &got); err != nil {
			t.Fatalf("%q became %q, which encoding/json refuses: %v", data, text, err)
		}
		if !cmp.Equal(want, got) {
			t.Fatalf("%q became %q: %s", data, text, cmp.Diff(want, got))
		}
	})
}

// FuzzJSNumber: numbers are written as JavaScript writes them (which
// encoding/json also does, but for -0) and read back exactly.
func FuzzJSNumber(f *testing.F) {
	for _, x := range []float64{0, 1, 1795385884149.001, 1e21, 1e-7, 5e-324, math.MaxFloat64} {
		f.Add(math.Float64bits(x))
	}
	f.Fuzz(func(t *testing.T, bits uint64) {
		x := math.Float64frombits(bits)
		got, err := appendJSNumber(nil, x)
		if math.IsNaN(x) || math.IsInf(x, 0) {
			if err == nil {
				t.Fatalf("%v written as %s", x, got)
			}
			return
		}
		if x == 0 {
			if string(got) != "0" {
				t.Fatalf("%v written as %s", x, got)
			}
			return
		}
		want, _ := json.Marshal(x)
		if string(got) != string(want) {
			t.Fatalf("%v written as %s, encoding/json writes %s", x, got, want)
		}
		back, err := strconv.ParseFloat(string(got), 64)
		if err != nil || back != x {
			t.Fatalf("%s reads back as %v, %v", got, back, err)
		}
	})
}
