// Command gomapharness plays gomap cross-check traces on real Go maps.
//
// It is part of the gomap Python package (python -m gomap crosscheck builds
// and runs it). Run it with GODEBUG=cpu.aes=off so that the runtime hashes
// keys with its portable fallback, keyed by runtime.hashkey and hmap.hash0.
//
// Input (stdin): one JSON object per trace:
//
//	{"id": 7, "kind": "int64", "hint": 0, "full": false,
//	 "ops": [[op, key, arg], ...]}
//
// op codes: 0 set(key, value)  1 delete(key)  2 lookup(key)  3 clear
// 4 iter_new(iterator id)  5 iter_next(iterator id).  Kinds: int64 int32
// uint64 uint32 float64 float32 string, and bytes (gomap's bytes keys, played
// on a map whose keys are strings, since Go hashes them the same way).  Float
// keys are given as their IEEE bit patterns (uint64 for float64, uint32 for
// float32), bytes keys as hex strings.
//
// Output (stdout): one JSON object per trace, on one line:
//
//	{"id": 7, "hashkey": [4 ints], "draws": [...],
//	 "init": step, "steps": [step, ...]}
//
// step = {"r": result, "d": draws made (omitted if 0), "n": len(m),
//
//	"h": [count, B, flags, noverflow, hash0, nevacuate, growing 0/1],
//	"bk": null | [chain, ...]      (full bucket array, when it was replaced)
//	"bd": [[index, chain], ...]    (else: the chains that changed)
//	"ok": null | [chain|evac, ...] (full old bucket array, when replaced)
//	"od": [[index, chain|evac], ...]}
//
// With "full": true every step carries "bk" and "ok".  With "verify": true
// every step also carries "fk" and "fo", the full arrays (a self-check of the
// delta encoding).  Results: set/delete/
// clear: null; lookup: [value, ok]; iter_new/iter_next: [key, value] or null
// when the iterator is exhausted (iter_next on an exhausted iterator does not
// call Next again and reports null).  Keys are printed like the input (float
// keys as bit patterns).
package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"strconv"
	"unsafe"
)

//go:linkname hashkey runtime.hashkey
var hashkey [4]uintptr

//go:linkname mapclear runtime.mapclear
func mapclear(t unsafe.Pointer, h unsafe.Pointer)

// hmap mirrors the runtime's map header (Go 1.19 .. 1.24 noswissmap; 1.24 appends
// clearSeq, which is not read).
type hmap struct {
	count      int
	flags      uint8
	B          uint8
	noverflow  uint16
	hash0      uint32
	buckets    unsafe.Pointer
	oldbuckets unsafe.Pointer
	nevacuate  uintptr
	extra      unsafe.Pointer
}

// bucket mirrors the compiler-generated bucket type of map[K]int64.
type bucket[K comparable] struct {
	tophash  [8]uint8
	keys     [8]K
	elems    [8]int64
	overflow unsafe.Pointer
}

type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

// hiter mirrors reflect's copy of the runtime hiter (its first twelve words: Go 1.24
// appends clearSeq).
type hiter struct {
	key         unsafe.Pointer
	elem        unsafe.Pointer
	t           unsafe.Pointer
	h           unsafe.Pointer
	buckets     unsafe.Pointer
	bptr        unsafe.Pointer
	overflow    unsafe.Pointer
	oldoverflow unsafe.Pointer
	startBucket uintptr
	offset      uint8
	wrapped     bool
	B           uint8
	i           uint8
	bucket      uintptr
	checkBucket uintptr
}

// mapIter mirrors reflect.MapIter.
type mapIter struct {
	m  reflect.Value
	it hiter
}

const (
	opSet = iota
	opDelete
	opLookup
	opClear
	opIterNew
	opIterNext
)

type trace struct {
	ID     int                 `json:"id"`
	Kind   string              `json:"kind"`
	Hint   int                 `json:"hint"`
	Full   bool                `json:"full"`
	Verify bool                `json:"verify"`
	Ops    [][]json.RawMessage `json:"ops"`
}

// sink makes maps escape, so that make() never stack-allocates a bucket.
var sink []interface{}

func main() {
	if unsafe.Sizeof(hiter{}) != 12*unsafe.Sizeof(uintptr(0)) {
		fmt.Fprintln(os.Stderr, "gomapharness: unexpected hiter size")
		os.Exit(3)
	}
	dec := json.NewDecoder(bufio.NewReaderSize(os.Stdin, 1<<20))
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	defer out.Flush()
	for {
		var tr trace
		if err := dec.Decode(&tr); err == io.EOF {
			break
		} else if err != nil {
			fmt.Fprintln(os.Stderr, "gomapharness: bad input:", err)
			out.Flush()
			os.Exit(3)
		}
		var line []byte
		var err error
		switch tr.Kind {
		case "int64":
			line, err = play[int64](&tr)
		case "int32":
			line, err = play[int32](&tr)
		case "uint64":
			line, err = play[uint64](&tr)
		case "uint32":
			line, err = play[uint32](&tr)
		case "float64":
			line, err = play[float64](&tr)
		case "float32":
			line, err = play[float32](&tr)
		case "string":
			line, err = play[string](&tr)
		case "bytes":
			line, err = play[hexString](&tr)
		default:
			err = fmt.Errorf("unknown key kind %q", tr.Kind)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "gomapharness: trace %d: %v\n", tr.ID, err)
			out.Flush()
			os.Exit(3)
		}
		out.Write(line)
		out.WriteByte('\n')
		sink = sink[:0]
	}
}

// hexString is a string key carried as hex digits in JSON (gomap's "bytes"
// keys: any bytes, hashed by Go exactly like a string).
type hexString string

func decodeKey[K comparable](raw json.RawMessage) (K, error) {
	var k K
	var err error
	switch p := any(&k).(type) {
	case *hexString:
		var s string
		if err = json.Unmarshal(raw, &s); err == nil {
			var b []byte
			b, err = hex.DecodeString(s)
			*p = hexString(b)
		}
	case *float64:
		var u uint64
		err = json.Unmarshal(raw, &u)
		*p = math.Float64frombits(u)
	case *float32:
		var u uint32
		err = json.Unmarshal(raw, &u)
		*p = math.Float32frombits(u)
	default:
		err = json.Unmarshal(raw, &k)
	}
	return k, err
}

func appendKey[K comparable](b []byte, k K) []byte {
	switch v := any(k).(type) {
	case int64:
		return strconv.AppendInt(b, v, 10)
	case int32:
		return strconv.AppendInt(b, int64(v), 10)
	case uint64:
		return strconv.AppendUint(b, v, 10)
	case uint32:
		return strconv.AppendUint(b, uint64(v), 10)
	case float64:
		return strconv.AppendUint(b, math.Float64bits(v), 10)
	case float32:
		return strconv.AppendUint(b, uint64(math.Float32bits(v)), 10)
	case string:
		return appendJSONString(b, v)
	case hexString:
		b = append(b, '"')
		for i := 0; i < len(v); i++ {
			b = append(b, hexDigits[v[i]>>4], hexDigits[v[i]&15])
		}
		return append(b, '"')
	}
	panic("unreachable")
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string; bytes >= 0x80 are copied as
// they are (keys come from Python str, so they are valid UTF-8).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c == 0x7f:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func hmapOf[K comparable](m map[K]int64) (*hmap, unsafe.Pointer) {
	var i interface{} = m
	e := (*eface)(unsafe.Pointer(&i))
	return (*hmap)(e.data), e.typ
}

// arrayState remembers what was last printed for one bucket array.
type arrayState struct {
	ptr    unsafe.Pointer // keeps the array alive, so its address is not reused
	valid  bool
	chains [][]byte
	raws   [][]byte
}

type player[K comparable] struct {
	m      map[K]int64
	h      *hmap
	typ    unsafe.Pointer
	full   bool
	verify bool
	cur    arrayState
	old    arrayState
	draws  []uint64
	iters  map[int64]*iterState
}

type iterState struct {
	it   *reflect.MapIter
	done bool
}

func play[K comparable](tr *trace) ([]byte, error) {
	p := &player[K]{full: tr.Full, verify: tr.Verify, iters: map[int64]*iterState{}}
	p.m = make(map[K]int64, tr.Hint)
	sink = append(sink, &p.m)
	p.h, p.typ = hmapOf(p.m)
	p.draws = append(p.draws, uint64(p.h.hash0))

	var body []byte
	body = append(body, `,"init":`...)
	body = p.appendStep(body, nil, 1)
	body = append(body, `,"steps":[`...)
	for i, op := range tr.Ops {
		if len(op) == 0 {
			return nil, fmt.Errorf("op %d: empty", i)
		}
		var code int
		if err := json.Unmarshal(op[0], &code); err != nil {
			return nil, fmt.Errorf("op %d: %v", i, err)
		}
		var res []byte
		ndraws := len(p.draws)
		switch code {
		case opSet, opDelete, opLookup:
			if len(op) < 2 {
				return nil, fmt.Errorf("op %d: missing key", i)
			}
			k, err := decodeKey[K](op[1])
			if err != nil {
				return nil, fmt.Errorf("op %d: key: %v", i, err)
			}
			switch code {
			case opSet:
				var v int64
				if len(op) < 3 {
					return nil, fmt.Errorf("op %d: missing value", i)
				}
				if err := json.Unmarshal(op[2], &v); err != nil {
					return nil, fmt.Errorf("op %d: value: %v", i, err)
				}
				p.m[k] = v
				res = []byte("null")
			case opDelete:
				before := p.h.count
				delete(p.m, k)
				if before > 0 && p.h.count == 0 {
					p.draws = append(p.draws, uint64(p.h.hash0))
				}
				res = []byte("null")
			case opLookup:
				v, ok := p.m[k]
				res = append(res, '[')
				res = strconv.AppendInt(res, v, 10)
				res = append(res, ',')
				res = strconv.AppendBool(res, ok)
				res = append(res, ']')
			}
		case opClear:
			before := p.h.count
			mapclear(p.typ, unsafe.Pointer(p.h))
			if before > 0 {
				p.draws = append(p.draws, uint64(p.h.hash0))
			}
			res = []byte("null")
		case opIterNew, opIterNext:
			var id int64
			if len(op) < 3 {
				return nil, fmt.Errorf("op %d: missing iterator id", i)
			}
			if err := json.Unmarshal(op[2], &id); err != nil {
				return nil, fmt.Errorf("op %d: iterator id: %v", i, err)
			}
			var st *iterState
			if code == opIterNew {
				if _, dup := p.iters[id]; dup {
					return nil, fmt.Errorf("op %d: iterator %d already exists", i, id)
				}
				before := p.h.count
				st = &iterState{it: reflect.ValueOf(p.m).MapRange()}
				p.iters[id] = st
				ok := st.it.Next()
				if before > 0 {
					mi := (*mapIter)(unsafe.Pointer(st.it))
					r := uint64(mi.it.startBucket) | uint64(mi.it.offset)<<mi.it.B
					p.draws = append(p.draws, r)
				}
				st.done = !ok
			} else {
				st = p.iters[id]
				if st == nil {
					return nil, fmt.Errorf("op %d: no iterator %d", i, id)
				}
				if !st.done {
					st.done = !st.it.Next()
				}
			}
			if st.done {
				res = []byte("null")
			} else {
				res = append(res, '[')
				res = appendKey(res, st.it.Key().Interface().(K))
				res = append(res, ',')
				res = strconv.AppendInt(res, st.it.Value().Int(), 10)
				res = append(res, ']')
			}
		default:
			return nil, fmt.Errorf("op %d: unknown op code %d", i, code)
		}
		if i > 0 {
			body = append(body, ',')
		}
		body = p.appendStep(body, res, len(p.draws)-ndraws)
	}
	body = append(body, "]}"...)

	var head []byte
	head = append(head, `{"id":`...)
	head = strconv.AppendInt(head, int64(tr.ID), 10)
	head = append(head, `,"kind":`...)
	head = appendJSONString(head, tr.Kind)
	head = append(head, `,"hashkey":[`...)
	for i, k := range hashkey {
		if i > 0 {
			head = append(head, ',')
		}
		head = strconv.AppendUint(head, uint64(k), 10)
	}
	head = append(head, `],"draws":[`...)
	for i, d := range p.draws {
		if i > 0 {
			head = append(head, ',')
		}
		head = strconv.AppendUint(head, d, 10)
	}
	head = append(head, ']')
	return append(head, body...), nil
}

func (p *player[K]) appendStep(b []byte, res []byte, ndraws int) []byte {
	h := p.h
	if res == nil {
		res = []byte("null")
	}
	b = append(b, `{"r":`...)
	b = append(b, res...)
	if ndraws > 0 {
		b = append(b, `,"d":`...)
		b = strconv.AppendInt(b, int64(ndraws), 10)
	}
	b = append(b, `,"n":`...)
	b = strconv.AppendInt(b, int64(len(p.m)), 10)
	b = append(b, `,"h":[`...)
	b = strconv.AppendInt(b, int64(h.count), 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(h.B), 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(h.flags), 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(h.noverflow), 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(h.hash0), 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(h.nevacuate), 10)
	if h.oldbuckets != nil {
		b = append(b, ",1]"...)
	} else {
		b = append(b, ",0]"...)
	}
	nb := uintptr(1) << h.B
	b = p.appendArray(b, `"bk"`, `"bd"`, &p.cur, h.buckets, nb, false)
	var nold uintptr
	if h.oldbuckets != nil {
		nold = nb
		if h.flags&8 == 0 {
			nold = nb / 2
		}
	}
	b = p.appendArray(b, `"ok"`, `"od"`, &p.old, h.oldbuckets, nold, true)
	if p.verify {
		// self-check mode: the full arrays as well, printed independently
		b = append(b, `,"fk":`...)
		b = appendFullArray[K](b, h.buckets, nb, false)
		b = append(b, `,"fo":`...)
		b = appendFullArray[K](b, h.oldbuckets, nold, true)
	}
	return append(b, '}')
}

// appendArray prints the array in full if it was replaced (or p.full), and
// otherwise the chains that changed since the last step (nothing if none).
func (p *player[K]) appendArray(b []byte, fullName, deltaName string, st *arrayState, arr unsafe.Pointer, n uintptr, old bool) []byte {
	if arr == nil {
		if st.valid && st.ptr == nil && !p.full {
			return b
		}
		st.ptr, st.valid, st.chains, st.raws = nil, true, nil, nil
		b = append(b, ',')
		b = append(b, fullName...)
		return append(b, ":null"...)
	}
	chains := make([][]byte, n)
	raws := make([][]byte, n)
	size := unsafe.Sizeof(bucket[K]{})
	replaced := p.full || !st.valid || st.ptr != arr || uintptr(len(st.chains)) != n
	var k K
	_, isString := any(k).(string)
	if _, ok := any(k).(hexString); ok {
		isString = true
	}
	for i := uintptr(0); i < n; i++ {
		b := unsafe.Add(arr, i*size)
		if !isString {
			// Keys and values without pointers: the chain's raw memory decides
			// whether it changed, and printing it again is skipped if not.
			raws[i] = appendRawChain[K](nil, b, old)
			if !replaced && string(raws[i]) == string(st.raws[i]) {
				chains[i] = st.chains[i]
				continue
			}
		}
		chains[i] = appendChain[K](nil, b, old)
	}
	if replaced {
		b = append(b, ',')
		b = append(b, fullName...)
		b = append(b, ":["...)
		for i, c := range chains {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, c...)
		}
		b = append(b, ']')
	} else {
		first := true
		for i, c := range chains {
			if string(c) == string(st.chains[i]) {
				continue
			}
			if first {
				b = append(b, ',')
				b = append(b, deltaName...)
				b = append(b, ":["...)
				first = false
			} else {
				b = append(b, ',')
			}
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(i), 10)
			b = append(b, ',')
			b = append(b, c...)
			b = append(b, ']')
		}
		if !first {
			b = append(b, ']')
		}
	}
	st.ptr, st.valid, st.chains, st.raws = arr, true, chains, raws
	return b
}

// appendRawChain appends the raw bytes of the bucket at ptr and its overflow
// buckets (only the first bucket's tophash for an evacuated old bucket).
func appendRawChain[K comparable](b []byte, ptr unsafe.Pointer, old bool) []byte {
	bk := (*bucket[K])(ptr)
	if old && bk.tophash[0] >= 2 && bk.tophash[0] <= 4 {
		return append(b, bk.tophash[:]...)
	}
	size := unsafe.Sizeof(bucket[K]{})
	for ; bk != nil; bk = (*bucket[K])(bk.overflow) {
		b = append(b, unsafe.Slice((*byte)(unsafe.Pointer(bk)), size)...)
	}
	return b
}

func appendFullArray[K comparable](b []byte, arr unsafe.Pointer, n uintptr, old bool) []byte {
	if arr == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i := uintptr(0); i < n; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendChain[K](b, unsafe.Add(arr, i*unsafe.Sizeof(bucket[K]{})), old)
	}
	return append(b, ']')
}

func appendTophash(b []byte, th *[8]uint8) []byte {
	b = append(b, '[')
	for i, t := range th {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(t), 10)
	}
	return append(b, ']')
}

func appendChain[K comparable](b []byte, ptr unsafe.Pointer, old bool) []byte {
	bk := (*bucket[K])(ptr)
	if old && bk.tophash[0] >= 2 && bk.tophash[0] <= 4 {
		b = append(b, `{"evacuated":true,"tophash":`...)
		b = appendTophash(b, &bk.tophash)
		return append(b, '}')
	}
	b = append(b, '[')
	for first := true; bk != nil; bk = (*bucket[K])(bk.overflow) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, `{"tophash":`...)
		b = appendTophash(b, &bk.tophash)
		b = append(b, `,"keys":[`...)
		for i := 0; i < 8; i++ {
			if i > 0 {
				b = append(b, ',')
			}
			if bk.tophash[i] < 5 {
				b = append(b, "null"...)
			} else {
				b = appendKey(b, bk.keys[i])
			}
		}
		b = append(b, `],"values":[`...)
		for i := 0; i < 8; i++ {
			if i > 0 {
				b = append(b, ',')
			}
			if bk.tophash[i] < 5 {
				b = append(b, "null"...)
			} else {
				b = strconv.AppendInt(b, bk.elems[i], 10)
			}
		}
		b = append(b, "]}"...)
	}
	return append(b, ']')
}
