//go:build !windows && !darwin

package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// desktopFile is where the freedesktop.org autostart entry lives.
func (s *Autostart) desktopFile() (string, error) {
	dir := s.ConfigHome
	if dir == "" || !filepath.IsAbs(dir) { // the XDG spec ignores a relative value
		if s.Home == "" {
			return "", errors.New("no home directory for the autostart entry")
		}
		dir = filepath.Join(s.Home, ".config")
	}
	return filepath.Join(dir, "autostart", "palpo.desktop"), nil
}

func (s *Autostart) enabled() (bool, error) {
	path, err := s.desktopFile()
	if err != nil {
		return false, err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// A desktop environment's settings may turn an entry off with Hidden.
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "Hidden=true" {
			return false, nil
		}
	}
	return true, nil
}

func (s *Autostart) enable() error {
	path, err := s.desktopFile()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	args := append([]string{s.Exe}, s.args()...)
	for i, a := range args {
		args[i] = desktopExecQuote(a)
	}
	entry := "[Desktop Entry]\n" +
		"Type=Application\n" +
		"Name=Palpo\n" +
		"Comment=Personal Matrix homeserver\n" +
		"Exec=" + strings.Join(args, " ") + "\n" +
		"Icon=palpo\n" +
		"Terminal=false\n" +
		"X-GNOME-Autostart-enabled=true\n"
	return writeFileAtomic(path, []byte(entry))
}

func (s *Autostart) disable() error {
	path, err := s.desktopFile()
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// desktopExecQuote quotes an argument for a desktop entry's Exec key: in
// double quotes, with ", `, $ and \ escaped by a backslash, and, since the
// whole value is also a string value, every backslash doubled once more
// (the spec's two levels of escaping). % is doubled so it is not a field
// code.
func desktopExecQuote(arg string) string {
	if arg != "" && !strings.ContainsAny(arg, " \t\n\"'\\><~|&;$*?#()`%=") {
		return arg
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range arg {
		switch r {
		case '"', '`', '$':
			b.WriteString(`\\`)
			b.WriteRune(r)
		case '\\':
			b.WriteString(`\\\\`)
		case '%':
			b.WriteString("%%")
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
