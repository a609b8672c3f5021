// Command media-bench measures Palpo's media repository on a real server
// started in-process on a loopback port with a temporary data directory:
//
//  1. memory while streaming a large file: one -size MiB upload (bytes
//     made on the fly by a seeded PRNG, never held in memory) and its
//     download, with the process's RSS read from /proc/self/status every
//     10 ms during each transfer (target: flat, under 50 MB above idle),
//     and the loopback throughput of each. The download is hashed and
//     compared with the upload. The client runs in this process too; it
//     streams through 128 KiB buffers, so the figure is the server's plus a
//     few hundred kilobytes.
//  2. thumbnails of a 12-megapixel (4000×3000) JPEG: the time of the first
//     request of each preset size (decode, scale and encode, then stored),
//     and of a repeated request (served from the stored thumbnail).
//
// The data directory is deleted at the end, with the large file. Run it
// with `go run ./cmd/media-bench`; -only stream|thumb runs one part.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/palpo-im/palpo-desktop/server"
	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/config"
)

func main() {
	sizeMiB := flag.Int("size", 500, "part 1: MiB to upload and download")
	runs := flag.Int("runs", 3, "part 2: repeated (cached) thumbnail requests to time per preset")
	only := flag.String("only", "", "run one part only: stream or thumb")
	dir := flag.String("dir", "", "data directory (default: a new temporary one, deleted at the end)")
	flag.Parse()
	if *sizeMiB < 1 || *runs < 1 {
		fmt.Fprintln(os.Stderr, "media-bench: -size and -runs must be at least 1")
		os.Exit(2)
	}
	switch *only {
	case "", "stream", "thumb":
	default:
		fmt.Fprintln(os.Stderr, "media-bench: -only must be stream or thumb")
		os.Exit(2)
	}
	if err := run(*sizeMiB, *runs, *only, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "media-bench:", err)
		os.Exit(1)
	}
}

func run(sizeMiB, runs int, only, dir string) error {
	fmt.Printf("media-bench: %s/%s, %d CPUs, GOMAXPROCS %d, %s\n\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	if dir == "" {
		tmp, err := os.MkdirTemp("", "media-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	cfg := config.Default()
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.Media.MaxUploadBytes = int64(sizeMiB)<<20 + 1<<20
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := server.New(context.Background(), cfg, dir, log)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	res, err := srv.Accounts().CreateAccount(context.Background(), accounts.NewAccount{
		Localpart: "bench", ByAdmin: true, Login: &accounts.SessionParams{DisplayName: "media-bench"},
	})
	if err != nil {
		return err
	}
	b := &bench{url: "http://" + srv.Addrs()[0].String(), token: res.AccessToken, srv: srv,
		client: &http.Client{Transport: &http.Transport{DisableCompression: true, WriteBufferSize: 128 << 10, ReadBufferSize: 128 << 10}}}
	if only == "" || only == "stream" {
		if err := b.stream(int64(sizeMiB) << 20); err != nil {
			return err
		}
	}
	if only == "" || only == "thumb" {
		if err := b.thumbnails(runs); err != nil {
			return err
		}
	}
	return nil
}

type bench struct {
	url, token string
	client     *http.Client
	srv        *server.Server
}

// rssKB reads a field (VmRSS, VmHWM) of /proc/self/status, in kB.
func rssKB(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return -1
}

// sampler records RSS every 10 ms until stopped.
type sampler struct {
	stop    chan struct{}
	done    sync.WaitGroup
	samples []int64
}

func startSampler() *sampler {
	s := &sampler{stop: make(chan struct{})}
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			s.samples = append(s.samples, rssKB("VmRSS"))
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) finish() []int64 {
	close(s.stop)
	s.done.Wait()
	return s.samples
}

func mb(kb int64) float64 { return float64(kb) / 1024 }

func report(what string, idle int64, samples []int64) {
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	peak := sorted[len(sorted)-1]
	med := sorted[len(sorted)/2]
	// Flatness: the spread between the first and last tenth of the run.
	tenth := max(1, len(samples)/10)
	first, last := avg(samples[:tenth]), avg(samples[len(samples)-tenth:])
	fmt.Printf("  %-9s RSS over %d samples: median %.1f MB, peak %.1f MB (%+.1f MB above idle); first tenth %.1f MB, last tenth %.1f MB\n",
		what, len(samples), mb(med), mb(peak), mb(peak-idle), mb(first), mb(last))
}

func avg(xs []int64) int64 {
	var s int64
	for _, x := range xs {
		s += x
	}
	return s / int64(len(xs))
}

func (b *bench) do(req *http.Request) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, body)
	}
	return resp, nil
}

func (b *bench) upload(body io.Reader, length int64, contentType string) (string, error) {
	req, err := http.NewRequest(http.MethodPost, b.url+"/_matrix/media/v3/upload", body)
	if err != nil {
		return "", err
	}
	req.ContentLength = length
	req.Header.Set("Content-Type", contentType)
	resp, err := b.do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		ContentURI string `json:"content_uri"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", err
	}
	return strings.TrimPrefix(out.ContentURI, "mxc://"), nil
}

// onlyReader hides other methods of a reader (such as WriteTo), so the
// HTTP client streams it through its buffer.
type onlyReader struct{ io.Reader }

func (b *bench) stream(size int64) error {
	fmt.Printf("1. streaming a %d MiB file\n", size>>20)
	runtime.GC()
	debug.FreeOSMemory()
	idle := rssKB("VmRSS")
	fmt.Printf("  idle RSS %.1f MB\n", mb(idle))

	prng := rand.NewChaCha8([32]byte{1, 2, 3})
	sent := sha256.New()
	src := io.TeeReader(io.LimitReader(prng, size), sent)
	s := startSampler()
	start := time.Now()
	mxc, err := b.upload(onlyReader{src}, size, "application/octet-stream")
	took := time.Since(start)
	samples := s.finish()
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	fmt.Printf("  upload:   %.2f s, %.0f MiB/s\n", took.Seconds(), float64(size>>20)/took.Seconds())
	report("upload", idle, samples)

	runtime.GC()
	debug.FreeOSMemory()
	idle2 := rssKB("VmRSS")
	req, _ := http.NewRequest(http.MethodGet, b.url+"/_matrix/client/v1/media/download/"+mxc, nil)
	got := sha256.New()
	s = startSampler()
	start = time.Now()
	resp, err := b.do(req)
	var n int64
	if err == nil {
		n, err = io.CopyBuffer(got, onlyReader{resp.Body}, make([]byte, 128<<10))
		resp.Body.Close()
	}
	took = time.Since(start)
	samples = s.finish()
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	if n != size || !bytes.Equal(got.Sum(nil), sent.Sum(nil)) {
		return fmt.Errorf("download: %d bytes, SHA-256 differs from the upload", n)
	}
	fmt.Printf("  download: %.2f s, %.0f MiB/s (SHA-256 matches the upload)\n", took.Seconds(), float64(size>>20)/took.Seconds())
	report("download", idle2, samples)
	fmt.Printf("  VmHWM (peak RSS of the whole run so far) %.1f MB\n", mb(rssKB("VmHWM")))

	server, mediaID, _ := strings.Cut(mxc, "/")
	if err := b.srv.Media().Delete(context.Background(), server, mediaID); err != nil {
		return fmt.Errorf("delete the large file: %w", err)
	}
	fmt.Printf("  (large file deleted)\n\n")
	return nil
}

// photo makes a w×h picture with smooth gradients and fine noise, so the
// JPEG is the size of a real photo (a flat picture would compress away).
func photo(w, h int) *image.YCbCr {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	r := rand.New(rand.NewPCG(7, 7))
	for y := range h {
		for x := range w {
			c := color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x + y) * 255 / (w + h)), 255}
			yy, cb, cr := color.RGBToYCbCr(c.R, c.G, c.B)
			img.Y[img.YOffset(x, y)] = yy + uint8(r.IntN(24))
			if x%2 == 0 && y%2 == 0 {
				img.Cb[img.COffset(x, y)] = cb
				img.Cr[img.COffset(x, y)] = cr
			}
		}
	}
	return img
}

func (b *bench) thumbnails(runs int) error {
	const w, h = 4000, 3000
	fmt.Printf("2. thumbnails of a %d×%d (%.0f megapixel) JPEG\n", w, h, float64(w*h)/1e6)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, photo(w, h), &jpeg.Options{Quality: 90}); err != nil {
		return err
	}
	start := time.Now()
	if _, err := jpeg.Decode(bytes.NewReader(buf.Bytes())); err != nil {
		return err
	}
	fmt.Printf("  source: %.1f MB; decoding it alone (image/jpeg) takes %.0f ms\n", float64(buf.Len())/1e6, float64(time.Since(start).Microseconds())/1000)
	mxc, err := b.upload(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "image/jpeg")
	if err != nil {
		return err
	}
	for _, p := range []struct {
		w, h   int
		method string
	}{{32, 32, "crop"}, {96, 96, "crop"}, {320, 240, "scale"}, {640, 480, "scale"}, {800, 600, "scale"}} {
		url := fmt.Sprintf("%s/_matrix/client/v1/media/thumbnail/%s?width=%d&height=%d&method=%s", b.url, mxc, p.w, p.h, p.method)
		fetch := func() (time.Duration, int, image.Rectangle, error) {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			start := time.Now()
			resp, err := b.do(req)
			if err != nil {
				return 0, 0, image.Rectangle{}, err
			}
			data, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			took := time.Since(start)
			if err != nil {
				return 0, 0, image.Rectangle{}, err
			}
			cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
			return took, len(data), image.Rect(0, 0, cfg.Width, cfg.Height), err
		}
		cold, size, dims, err := fetch()
		if err != nil {
			return err
		}
		var warm []time.Duration
		for range runs {
			d, _, _, err := fetch()
			if err != nil {
				return err
			}
			warm = append(warm, d)
		}
		slices.Sort(warm)
		fmt.Printf("  %3dx%-3d %-5s -> %dx%d, %6.1f kB: first request (generate) %4.0f ms, repeated (stored) median %.1f ms\n",
			p.w, p.h, p.method, dims.Dx(), dims.Dy(), float64(size)/1000, float64(cold.Microseconds())/1000, float64(warm[len(warm)/2].Microseconds())/1000)
	}
	return nil
}
