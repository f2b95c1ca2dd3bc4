// Command harness_sync plays sync.Map traces for gomap's differential tests
// (tests/test_syncmap_go.py) and reports, after every operation, its result
// and sync.Map's internal state, read with reflect/unsafe.
//
// Protocol (JSON lines): on start it prints one line,
//
//	{"ok": true, "go": "go1.19.8"}   or   {"ok": false, "error": "..."}
//
// then, for each input line {"ops": [op, ...]} (a trace played on a fresh
// sync.Map), it prints {"steps": [{"r": result, "s": state}, ...]} or
// {"error": "..."}.  Keys and values are JSON integers, strings or null.
// Ops and results:
//
//	["Load", k]              -> [value, ok]
//	["Store", k, v]          -> null
//	["LoadOrStore", k, v]    -> [actual, loaded]
//	["LoadAndDelete", k]     -> [value, loaded]
//	["Delete", k]            -> null
//	["Range", n]             -> [[k, v], ...]  (f returns false on call max(n, 1); n < 0: never)
//	["Swap", k, v]           -> [previous, loaded]
//	["CompareAndSwap", k, old, new] -> swapped
//	["CompareAndDelete", k, old]    -> deleted
//	["Clear"]                -> null
//
// (Swap, CompareAndSwap, CompareAndDelete and Clear are emulated on Go 1.19:
// see swapper below.)
//
// With "kind" (int64 int32 uint64 uint32 float64 float32 string bytes) keys are
// Go values of that type (bytes keys are Go strings); without, ints become int.
// With "maps": true every step also carries "m": {"read": info, "dirty": info},
// each map's header and buckets read with unsafe (info: hash0, B, count,
// noverflow, nevacuate, growing, same_size_grow, buckets: [[{tophash, keys}, ...
// overflow chain], ...] and oldbuckets, where an evacuated old bucket is
// {evacuated: true, tophash}). Keys of empty slots are null. The hello line
// carries runtime.hashkey: run with GODEBUG=cpu.aes=off so the maps hash with
// the portable fallback that gomap reproduces.
//
// state: {"read": [keys of read.m], "amended": bool, "dirty": [keys] | null,
// "misses": int, "expunged": [keys], "deleted": [keys whose entry.p is nil],
// "shared": [keys whose read and dirty entries are the same *entry]}.
//
// The internal layout read here is Go 1.19's (read is an atomic.Value holding a
// readOnly) and Go 1.20-1.23's (read is an atomic.Pointer[readOnly], entry.p an
// atomic.Pointer[any]); with Go >= 1.24 build with
// GOEXPERIMENT=nosynchashtriemap.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"
)

//go:linkname hashkey runtime.hashkey
var hashkey [4]uintptr

//go:linkname mapclear runtime.mapclear
func mapclear(t unsafe.Pointer, h unsafe.Pointer)

type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

// hmap mirrors the runtime's map header (Go 1.19 .. 1.23).
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

// anyBucket mirrors the compiler-generated bucket of map[any]*entry: 8 tophash
// bytes, 8 interface keys (16 bytes each), 8 pointers, the overflow link.
type anyBucket struct {
	tophash  [8]uint8
	keys     [8]any
	elems    [8]unsafe.Pointer
	overflow *anyBucket
}

const sameSizeGrow = 8

func chain(b *anyBucket) []any {
	out := []any{}
	for ; b != nil; b = b.overflow {
		top := make([]int, 8)
		keys := make([]any, 8)
		for i := 0; i < 8; i++ {
			top[i] = int(b.tophash[i])
			if b.tophash[i] >= 5 {
				keys[i] = b.keys[i]
			}
		}
		out = append(out, map[string]any{"tophash": top, "keys": keys})
	}
	return out
}

func bucketAt(base unsafe.Pointer, i uintptr) *anyBucket {
	return (*anyBucket)(unsafe.Add(base, i*unsafe.Sizeof(anyBucket{})))
}

// mapInfo reads the header and every bucket of a map[any]*entry with unsafe
// (no iteration: nothing is drawn and no flag is set).
func mapInfo(v reflect.Value) any {
	if !v.IsValid() || v.IsNil() {
		return nil
	}
	h := (*hmap)(v.UnsafePointer())
	info := map[string]any{
		"hash0": h.hash0, "B": h.B, "count": h.count, "noverflow": h.noverflow,
		"nevacuate": h.nevacuate, "growing": h.oldbuckets != nil,
		"same_size_grow": h.flags&sameSizeGrow != 0, "buckets": nil, "oldbuckets": nil,
	}
	if h.buckets != nil {
		bs := []any{}
		for i := uintptr(0); i < 1<<h.B; i++ {
			bs = append(bs, chain(bucketAt(h.buckets, i)))
		}
		info["buckets"] = bs
	}
	if h.oldbuckets != nil {
		n := uintptr(1) << h.B
		if h.flags&sameSizeGrow == 0 {
			n >>= 1
		}
		os := []any{}
		for i := uintptr(0); i < n; i++ {
			b := bucketAt(h.oldbuckets, i)
			if t := b.tophash[0]; t > 1 && t < 5 {
				top := make([]int, 8)
				for j := range top {
					top[j] = int(b.tophash[j])
				}
				os = append(os, map[string]any{"evacuated": true, "tophash": top})
			} else {
				os = append(os, chain(b))
			}
		}
		info["oldbuckets"] = os
	}
	return info
}

// maps reports read.m and dirty of m as mapInfo.
func maps(m *sync.Map) map[string]any {
	rm, _ := readOnly(m)
	return map[string]any{"read": mapInfo(rm), "dirty": mapInfo(field(reflect.ValueOf(m).Elem(), "dirty"))}
}

// field returns the (possibly unexported) field name of the addressable
// struct v as a fully usable Value.
func field(v reflect.Value, name string) reflect.Value {
	f := v.FieldByName(name)
	if !f.IsValid() {
		panic(fmt.Sprintf("sync.Map layout: %s has no field %q", v.Type(), name))
	}
	return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
}

// readOnly returns the map read.m and read.amended of m.
func readOnly(m *sync.Map) (reflect.Value, bool) {
	mv := reflect.ValueOf(m).Elem()
	read := field(mv, "read")
	var ro reflect.Value // addressable readOnly struct, or invalid if unset
	switch {
	case read.Type().String() == "atomic.Value": // Go 1.19
		iv := field(read, "v")
		if !iv.IsNil() {
			ro = reflect.New(iv.Elem().Type()).Elem()
			ro.Set(iv.Elem())
		}
	case read.Kind() == reflect.Struct: // atomic.Pointer[readOnly], Go 1.20+
		var elem reflect.Type
		for i := 0; i < read.NumField(); i++ {
			t := read.Type().Field(i).Type
			if t.Kind() == reflect.Array && t.Elem().Kind() == reflect.Pointer {
				elem = t.Elem().Elem()
			}
		}
		if elem == nil {
			panic("sync.Map layout: cannot find atomic.Pointer's element type")
		}
		if p := field(read, "v").UnsafePointer(); p != nil {
			ro = reflect.NewAt(elem, p).Elem()
		}
	default:
		panic("sync.Map layout: unknown type of read: " + read.Type().String())
	}
	if !ro.IsValid() {
		return reflect.Value{}, false
	}
	return field(ro, "m"), field(ro, "amended").Bool()
}

// entryP returns entry.p of the *entry e.
func entryP(e reflect.Value) unsafe.Pointer {
	p := field(e.Elem(), "p")
	if p.Kind() == reflect.UnsafePointer { // Go 1.19
		return p.UnsafePointer()
	}
	return field(p, "v").UnsafePointer() // atomic.Pointer[any]
}

var expunged unsafe.Pointer

// probeExpunged finds sync's expunged sentinel by driving a map into a state
// where an entry of read.m must be expunged.
func probeExpunged() {
	var m sync.Map
	m.Store(1, 1)
	m.Load(1) // a miss with len(dirty) == 1: promotes
	m.Delete(1)
	m.Store(2, 2) // dirtyLocked expunges the nil entry of key 1
	rm, _ := readOnly(&m)
	e := rm.MapIndex(reflect.ValueOf(any(1)))
	if !e.IsValid() {
		panic("sync.Map layout: probe key missing from read.m")
	}
	expunged = entryP(e)
	if expunged == nil {
		panic("sync.Map layout: probe entry not expunged")
	}
}

func keyOf(k reflect.Value) any { return k.Interface() }

func state(m *sync.Map) map[string]any {
	mv := reflect.ValueOf(m).Elem()
	rm, amended := readOnly(m)
	dirty := field(mv, "dirty")
	misses := field(mv, "misses").Int()

	readKeys, exp, del, shared := []any{}, []any{}, []any{}, []any{}
	classify := func(k, e reflect.Value) {
		switch entryP(e) {
		case nil:
			del = append(del, keyOf(k))
		case expunged:
			exp = append(exp, keyOf(k))
		}
	}
	if rm.IsValid() && !rm.IsNil() {
		it := rm.MapRange()
		for it.Next() {
			k, e := it.Key(), it.Value()
			readKeys = append(readKeys, keyOf(k))
			classify(k, e)
			if !dirty.IsNil() {
				if d := dirty.MapIndex(k); d.IsValid() && d.Pointer() == e.Pointer() {
					shared = append(shared, keyOf(k))
				}
			}
		}
	}
	var dirtyKeys any // null when dirty == nil
	if !dirty.IsNil() {
		dk := []any{}
		it := dirty.MapRange()
		for it.Next() {
			k, e := it.Key(), it.Value()
			dk = append(dk, keyOf(k))
			if rm.IsValid() {
				if r := rm.MapIndex(k); r.IsValid() && r.Pointer() == e.Pointer() {
					continue // classified with read.m
				}
			}
			classify(k, e)
		}
		dirtyKeys = dk
	}
	return map[string]any{
		"read": readKeys, "amended": amended, "dirty": dirtyKeys,
		"misses": misses, "expunged": exp, "deleted": del, "shared": shared,
	}
}

// norm turns a decoded JSON scalar into the Go value used as key or value.
func norm(x any) any {
	switch v := x.(type) {
	case json.Number:
		i, err := v.Int64()
		if err != nil {
			panic("only integers are supported: " + v.String())
		}
		return int(i)
	case string, nil:
		return v
	}
	panic(fmt.Sprintf("unsupported JSON value %#v", x))
}

// The methods Go 1.20 (Swap, CompareAndSwap, CompareAndDelete) and Go 1.23
// (Clear) added. With a Go that has them, the real methods run. With Go 1.19
// they are emulated on the runtime's own sync.Map, so that every map operation
// is still the runtime's: Swap is Store (the same map operations in Go 1.19's
// Store and Go 1.20's Swap) after peeking at the previous value; the compares
// swap entry.p atomically, and their miss is recorded by a Load of the key
// (whose slow path is exactly `lookup read.m, lookup dirty, missLocked`);
// Clear stores an empty readOnly, clears dirty with runtime.mapclear and
// resets misses, as Go 1.23's Clear does.

type swapper interface {
	Swap(key, value any) (any, bool)
	CompareAndSwap(key, old, new any) bool
	CompareAndDelete(key, old any) bool
}

type clearer interface{ Clear() }

// lookup returns the *entry for k in the map value mv (invalid if absent).
func lookup(mv reflect.Value, k any) reflect.Value {
	if !mv.IsValid() || mv.IsNil() {
		return reflect.Value{}
	}
	return mv.MapIndex(reflect.ValueOf(&k).Elem())
}

// pField is the address of entry.p (Go 1.19: an unsafe.Pointer field).
func pField(e reflect.Value) *unsafe.Pointer {
	if field(e.Elem(), "p").Kind() != reflect.UnsafePointer {
		panic("emulating Go 1.20 methods needs Go 1.19's sync.Map layout")
	}
	return (*unsafe.Pointer)(unsafe.Pointer(e.Pointer()))
}

func live(p unsafe.Pointer) bool { return p != nil && p != expunged }

func swap(m *sync.Map, k, v any) (any, bool) {
	if s, ok := any(m).(swapper); ok {
		return s.Swap(k, v)
	}
	rm, amended := readOnly(m)
	e := lookup(rm, k)
	if !e.IsValid() && amended {
		e = lookup(field(reflect.ValueOf(m).Elem(), "dirty"), k)
	}
	var prev any
	ok := false
	if e.IsValid() {
		if p := entryP(e); live(p) {
			prev, ok = *(*any)(p), true
		}
	}
	m.Store(k, v)
	return prev, ok
}

func casEntry(e reflect.Value, old, new any) bool {
	pp := pField(e)
	p := *pp
	if !live(p) || *(*any)(p) != old {
		return false
	}
	nc := new
	*pp = unsafe.Pointer(&nc)
	return true
}

func compareAndSwap(m *sync.Map, k, old, new any) bool {
	if s, ok := any(m).(swapper); ok {
		return s.CompareAndSwap(k, old, new)
	}
	rm, amended := readOnly(m)
	if e := lookup(rm, k); e.IsValid() {
		return casEntry(e, old, new)
	} else if !amended {
		return false
	}
	e := lookup(field(reflect.ValueOf(m).Elem(), "dirty"), k)
	if !e.IsValid() {
		return false
	}
	swapped := casEntry(e, old, new)
	m.Load(k) // missLocked
	return swapped
}

func compareAndDelete(m *sync.Map, k, old any) bool {
	if s, ok := any(m).(swapper); ok {
		return s.CompareAndDelete(k, old)
	}
	rm, amended := readOnly(m)
	e := lookup(rm, k)
	if !e.IsValid() && amended {
		e = lookup(field(reflect.ValueOf(m).Elem(), "dirty"), k)
		m.Load(k) // missLocked, whether or not dirty has the key
	}
	if !e.IsValid() {
		return false
	}
	return casEntry(e, old, nil) && func() bool { *pField(e) = nil; return true }()
}

func clearMap(m *sync.Map) {
	if c, ok := any(m).(clearer); ok {
		c.Clear()
		return
	}
	mv := reflect.ValueOf(m).Elem()
	rm, amended := readOnly(m)
	if (!rm.IsValid() || rm.Len() == 0) && !amended {
		return
	}
	read := field(mv, "read")
	if read.Type().String() != "atomic.Value" {
		panic("emulating Clear needs Go 1.19's sync.Map layout")
	}
	av := (*atomic.Value)(unsafe.Pointer(read.UnsafeAddr()))
	if rm.Len() > 0 || amended {
		av.Store(reflect.Zero(reflect.TypeOf(av.Load())).Interface())
	}
	if dirty := field(mv, "dirty"); !dirty.IsNil() {
		d := dirty.Interface()
		e := (*eface)(unsafe.Pointer(&d))
		mapclear(e.typ, e.data)
	}
	field(mv, "misses").SetInt(0)
}

// key turns a decoded JSON key into a Go value of the trace's key kind ("" :
// int or string, as norm).
func key(x any, kind string) any {
	n, isNum := x.(json.Number)
	s, _ := x.(string)
	must := func(err error) {
		if err != nil {
			panic(fmt.Sprintf("bad %s key %v: %v", kind, x, err))
		}
	}
	switch kind {
	case "":
		return norm(x)
	case "string", "bytes":
		if isNum {
			panic("string key expected")
		}
		return s
	}
	if !isNum {
		panic("number key expected for kind " + kind)
	}
	switch kind {
	case "int64":
		v, err := strconv.ParseInt(n.String(), 10, 64)
		must(err)
		return v
	case "int32":
		v, err := strconv.ParseInt(n.String(), 10, 32)
		must(err)
		return int32(v)
	case "uint64":
		v, err := strconv.ParseUint(n.String(), 10, 64)
		must(err)
		return v
	case "uint32":
		v, err := strconv.ParseUint(n.String(), 10, 32)
		must(err)
		return uint32(v)
	case "float64":
		v, err := strconv.ParseFloat(n.String(), 64)
		must(err)
		return v
	case "float32":
		v, err := strconv.ParseFloat(n.String(), 32)
		must(err)
		return float32(v)
	}
	panic("unknown key kind " + kind)
}

func play(ops [][]any, kind string, withMaps bool) (steps []map[string]any) {
	var m sync.Map
	for _, op := range ops {
		name, _ := op[0].(string)
		var r any
		switch name {
		case "Load":
			v, ok := m.Load(key(op[1], kind))
			r = []any{v, ok}
		case "Store":
			m.Store(key(op[1], kind), norm(op[2]))
		case "LoadOrStore":
			v, loaded := m.LoadOrStore(key(op[1], kind), norm(op[2]))
			r = []any{v, loaded}
		case "LoadAndDelete":
			v, loaded := m.LoadAndDelete(key(op[1], kind))
			r = []any{v, loaded}
		case "Delete":
			m.Delete(key(op[1], kind))
		case "Swap":
			v, loaded := swap(&m, key(op[1], kind), norm(op[2]))
			r = []any{v, loaded}
		case "CompareAndSwap":
			r = compareAndSwap(&m, key(op[1], kind), norm(op[2]), norm(op[3]))
		case "CompareAndDelete":
			r = compareAndDelete(&m, key(op[1], kind), norm(op[2]))
		case "Clear":
			clearMap(&m)
		case "Range":
			limit := norm(op[1]).(int)
			seen := [][]any{}
			m.Range(func(k, v any) bool {
				seen = append(seen, []any{k, v})
				return limit < 0 || len(seen) < limit
			})
			r = seen
		default:
			panic("unknown op " + fmt.Sprint(op[0]))
		}
		step := map[string]any{"r": r}
		if withMaps {
			// Before state(), whose reflect iteration sets the maps' iterator flags.
			step["m"] = maps(&m)
		}
		step["s"] = state(&m)
		steps = append(steps, step)
	}
	return steps
}

func emit(out *bufio.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]any{"error": err.Error()})
	}
	out.Write(b)
	out.WriteByte('\n')
	out.Flush()
}

func main() {
	out := bufio.NewWriter(os.Stdout)
	hello := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%v", r)
			}
		}()
		probeExpunged()
		state(new(sync.Map))
		return nil
	}()
	if hello != nil {
		emit(out, map[string]any{"ok": false, "go": runtime.Version(), "error": hello.Error()})
		os.Exit(2)
	}
	emit(out, map[string]any{"ok": true, "go": runtime.Version(), "hashkey": hashkey})

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<26)
	for in.Scan() {
		func() {
			defer func() {
				if r := recover(); r != nil {
					emit(out, map[string]any{"error": fmt.Sprint(r)})
				}
			}()
			var req struct {
				Ops  [][]any
				Kind string
				Maps bool
			}
			dec := json.NewDecoder(bytes.NewReader(in.Bytes()))
			dec.UseNumber()
			if err := dec.Decode(&req); err != nil {
				panic(err)
			}
			emit(out, map[string]any{"steps": play(req.Ops, req.Kind, req.Maps)})
		}()
	}
}
