// Go 1.19 runtime-map benchmarks with the same workloads as benches/core.rs
// (GOMAP_BENCH_JSON mode) and benches/test_bench_map.py. Prints ns/op as JSON.
//
//	go run . -mode table [-n 1000000] [-reps 5]     // insert/hit/miss/delete/iterate, int64 and string16
//	go run . -mode sweep [-sizes 1000,...]           // get-hit ns/op against map size
//
// Each figure is the median of -reps repetitions; one op is one key (insert,
// lookup, delete) or one entry visited (iterate).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

var sinkI int64

// splitmix64, the same key generator as benches/core.rs (same keys, same order).
type splitmix struct{ s uint64 }

func (r *splitmix) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// keysInt: n distinct present keys (even) and n absent keys (odd), random order.
func keysInt(n int, seed uint64) ([]int64, []int64) {
	r := splitmix{seed}
	hit := make([]int64, n)
	miss := make([]int64, n)
	for i := range hit {
		hit[i] = int64(r.next() &^ 1)
		miss[i] = int64(r.next() | 1)
	}
	return hit, miss
}

const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"

func str16(r *splitmix, last byte) string {
	var b [16]byte
	x := r.next()
	y := r.next()
	for i := 0; i < 10; i++ {
		b[i] = alphabet[x&63]
		x >>= 6
	}
	for i := 10; i < 15; i++ {
		b[i] = alphabet[y&63]
		y >>= 6
	}
	b[15] = last
	return string(b[:])
}

// keysStr: 16-byte strings; present keys end in 'h', absent ones in 'm'.
func keysStr(n int, seed uint64) ([]string, []string) {
	r := splitmix{seed}
	hit := make([]string, n)
	miss := make([]string, n)
	for i := range hit {
		hit[i] = str16(&r, 'h')
		miss[i] = str16(&r, 'm')
	}
	return hit, miss
}

func median(xs []float64) float64 {
	sort.Float64s(xs)
	return xs[len(xs)/2]
}

func measure(reps int, f func() (time.Duration, int)) float64 {
	out := make([]float64, 0, reps)
	for i := 0; i < reps; i++ {
		d, ops := f()
		out = append(out, float64(d.Nanoseconds())/float64(ops))
	}
	return median(out)
}

func benchInt(n, reps int) map[string]float64 {
	hit, miss := keysInt(n, 1)
	res := map[string]float64{}
	fill := func() map[int64]int64 {
		m := make(map[int64]int64)
		for i, k := range hit {
			m[k] = int64(i)
		}
		return m
	}
	res["insert"] = measure(reps, func() (time.Duration, int) {
		t := time.Now()
		m := make(map[int64]int64)
		for i, k := range hit {
			m[k] = int64(i)
		}
		d := time.Since(t)
		sinkI += int64(len(m))
		return d, n
	})
	m := fill()
	res["hit"] = measure(reps, func() (time.Duration, int) {
		var s int64
		t := time.Now()
		for _, k := range hit {
			s += m[k]
		}
		d := time.Since(t)
		sinkI += s
		return d, n
	})
	res["miss"] = measure(reps, func() (time.Duration, int) {
		var s int
		t := time.Now()
		for _, k := range miss {
			if _, ok := m[k]; ok {
				s++
			}
		}
		d := time.Since(t)
		sinkI += int64(s)
		return d, n
	})
	res["iterate"] = measure(reps, func() (time.Duration, int) {
		var s int64
		t := time.Now()
		for k, v := range m {
			s += k ^ v
		}
		d := time.Since(t)
		sinkI += s
		return d, n
	})
	res["delete"] = measure(reps, func() (time.Duration, int) {
		m := fill()
		t := time.Now()
		for _, k := range hit {
			delete(m, k)
		}
		d := time.Since(t)
		sinkI += int64(len(m))
		return d, n
	})
	return res
}

func benchStr(n, reps int) map[string]float64 {
	hit, miss := keysStr(n, 2)
	res := map[string]float64{}
	fill := func() map[string]int64 {
		m := make(map[string]int64)
		for i, k := range hit {
			m[k] = int64(i)
		}
		return m
	}
	res["insert"] = measure(reps, func() (time.Duration, int) {
		t := time.Now()
		m := make(map[string]int64)
		for i, k := range hit {
			m[k] = int64(i)
		}
		d := time.Since(t)
		sinkI += int64(len(m))
		return d, n
	})
	m := fill()
	res["hit"] = measure(reps, func() (time.Duration, int) {
		var s int64
		t := time.Now()
		for _, k := range hit {
			s += m[k]
		}
		d := time.Since(t)
		sinkI += s
		return d, n
	})
	res["miss"] = measure(reps, func() (time.Duration, int) {
		var s int
		t := time.Now()
		for _, k := range miss {
			if _, ok := m[k]; ok {
				s++
			}
		}
		d := time.Since(t)
		sinkI += int64(s)
		return d, n
	})
	res["iterate"] = measure(reps, func() (time.Duration, int) {
		var s int64
		t := time.Now()
		for k, v := range m {
			s += int64(len(k)) ^ v
		}
		d := time.Since(t)
		sinkI += s
		return d, n
	})
	res["delete"] = measure(reps, func() (time.Duration, int) {
		m := fill()
		t := time.Now()
		for _, k := range hit {
			delete(m, k)
		}
		d := time.Since(t)
		sinkI += int64(len(m))
		return d, n
	})
	return res
}

// sweep: get-hit ns/op at each size, 1M lookups of present keys in random order.
func sweep(sizes []int, reps int) map[string]float64 {
	res := map[string]float64{}
	const lookups = 1000000
	for _, n := range sizes {
		hit, _ := keysInt(n, 3)
		m := make(map[int64]int64)
		for i, k := range hit {
			m[k] = int64(i)
		}
		rnd := rand.New(rand.NewSource(4))
		probe := make([]int64, lookups)
		for i := range probe {
			probe[i] = hit[rnd.Intn(n)]
		}
		res[strconv.Itoa(n)] = measure(reps, func() (time.Duration, int) {
			var s int64
			t := time.Now()
			for _, k := range probe {
				s += m[k]
			}
			d := time.Since(t)
			sinkI += s
			return d, lookups
		})
	}
	return res
}

func main() {
	mode := flag.String("mode", "table", "table or sweep")
	n := flag.Int("n", 1000000, "entries (table mode)")
	reps := flag.Int("reps", 5, "repetitions; the median is reported")
	sizesF := flag.String("sizes", "1000,10000,100000,1000000,10000000", "sizes (sweep mode)")
	flag.Parse()
	var out interface{}
	switch *mode {
	case "table":
		out = map[string]interface{}{
			"n":      *n,
			"int64":  benchInt(*n, *reps),
			"string": benchStr(*n, *reps),
		}
	case "sweep":
		var sizes []int
		for _, s := range strings.Split(*sizesF, ",") {
			v, err := strconv.Atoi(s)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			sizes = append(sizes, v)
		}
		out = map[string]interface{}{"get_hit": sweep(sizes, *reps)}
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", *mode)
		os.Exit(2)
	}
	enc, _ := json.Marshal(out)
	fmt.Println(string(enc))
	if sinkI == 42 {
		fmt.Fprintln(os.Stderr, "")
	}
}
