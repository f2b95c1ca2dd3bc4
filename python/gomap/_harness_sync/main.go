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
	"sync"
	"unsafe"
)

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

func play(ops [][]any) (steps []map[string]any) {
	var m sync.Map
	for _, op := range ops {
		name, _ := op[0].(string)
		var r any
		switch name {
		case "Load":
			v, ok := m.Load(norm(op[1]))
			r = []any{v, ok}
		case "Store":
			m.Store(norm(op[1]), norm(op[2]))
		case "LoadOrStore":
			v, loaded := m.LoadOrStore(norm(op[1]), norm(op[2]))
			r = []any{v, loaded}
		case "LoadAndDelete":
			v, loaded := m.LoadAndDelete(norm(op[1]))
			r = []any{v, loaded}
		case "Delete":
			m.Delete(norm(op[1]))
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
		steps = append(steps, map[string]any{"r": r, "s": state(&m)})
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
	emit(out, map[string]any{"ok": true, "go": runtime.Version()})

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<26)
	for in.Scan() {
		func() {
			defer func() {
				if r := recover(); r != nil {
					emit(out, map[string]any{"error": fmt.Sprint(r)})
				}
			}()
			var req struct{ Ops [][]any }
			dec := json.NewDecoder(bytes.NewReader(in.Bytes()))
			dec.UseNumber()
			if err := dec.Decode(&req); err != nil {
				panic(err)
			}
			emit(out, map[string]any{"steps": play(req.Ops)})
		}()
	}
}
