// Command startup-bench measures how fast `palpo serve` becomes useful and
// how little memory it holds while idle: it starts the binary on a fresh data
// directory (and again on the now-existing one), polls /versions until the
// first 200, and then reads the process's resident memory after it has idled.
// Linux only (memory comes from /proc).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	binary := flag.String("binary", "./bin/palpo-headless", "palpo binary to measure")
	runs := flag.Int("runs", 10, "start-ups to measure")
	idle := flag.Duration("idle", 3*time.Second, "how long to idle before reading memory")
	flag.Parse()
	if err := run(*binary, *runs, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "startup-bench:", err)
		os.Exit(1)
	}
}

func run(binary string, runs int, idle time.Duration) error {
	var first, again []time.Duration
	var rss []int
	for i := 0; i < runs; i++ {
		dir, err := os.MkdirTemp("", "palpo-startup-")
		if err != nil {
			return err
		}
		d, _, err := startOnce(binary, dir, 0)
		if err != nil {
			os.RemoveAll(dir)
			return fmt.Errorf("first start: %w", err)
		}
		first = append(first, d)
		d, kb, err := startOnce(binary, dir, idle)
		os.RemoveAll(dir)
		if err != nil {
			return fmt.Errorf("restart: %w", err)
		}
		again = append(again, d)
		rss = append(rss, kb)
	}
	fmt.Printf("palpo serve, %d runs\n", runs)
	fmt.Printf("  start to first /versions, new data dir:      median %v, max %v\n", median(first), slices.Max(first))
	fmt.Printf("  start to first /versions, existing data dir: median %v, max %v\n", median(again), slices.Max(again))
	slices.Sort(rss)
	fmt.Printf("  idle RSS after %v: median %.1f MB, max %.1f MB\n", idle, float64(rss[len(rss)/2])/1024, float64(rss[len(rss)-1])/1024)
	return nil
}

// startOnce starts palpo on a free port, times the first good /versions,
// optionally idles and reads VmRSS (kB), then stops it with SIGTERM.
func startOnce(binary, dir string, idle time.Duration) (time.Duration, int, error) {
	port, err := freePort()
	if err != nil {
		return 0, 0, err
	}
	cfg := fmt.Sprintf("listen = [\"127.0.0.1:%d\"]\n[log]\nlevel = \"warn\"\n", port)
	if err := os.WriteFile(filepath.Join(dir, "palpo.toml"), []byte(cfg), 0o600); err != nil {
		return 0, 0, err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/_matrix/client/versions", port)
	client := &http.Client{Timeout: time.Second}
	cmd := exec.Command(binary, "serve", "--data-dir", dir)
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var took time.Duration
	for {
		if ctx.Err() != nil {
			return 0, 0, fmt.Errorf("no answer from %s within 10s", url)
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				took = time.Since(start)
				break
			}
		}
		time.Sleep(time.Millisecond)
	}
	if idle == 0 {
		return took, 0, nil
	}
	time.Sleep(idle)
	kb, err := rssKB(cmd.Process.Pid)
	return took, kb, err
}

func rssKB(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
