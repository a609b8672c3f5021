//go:build darwin

package app

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const launchAgentLabel = "im.palpo.desktop"

func (s *Autostart) plistPath() (string, error) {
	if s.Home == "" {
		return "", errors.New("no home directory for the LaunchAgent")
	}
	return filepath.Join(s.Home, "Library", "LaunchAgents", launchAgentLabel+".plist"), nil
}

func (s *Autostart) enabled() (bool, error) {
	path, err := s.plistPath()
	if err != nil {
		return false, err
	}
	_, err = os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func (s *Autostart) enable() error {
	path, err := s.plistPath()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	var args strings.Builder
	for _, a := range append([]string{s.Exe}, s.args()...) {
		args.WriteString("\t\t<string>" + xmlText(a) + "</string>\n")
	}
	plist := `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>` + launchAgentLabel + `</string>
	<key>ProgramArguments</key>
	<array>
` + args.String() + `	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>ProcessType</key>
	<string>Interactive</string>
</dict>
</plist>
`
	return writeFileAtomic(path, []byte(plist))
}

func (s *Autostart) disable() error {
	path, err := s.plistPath()
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}
