package ui

import (
	"errors"
	"slices"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"
)

type fakeController struct{ status Status }

func (f fakeController) Status() Status { return f.status }

var running = Status{
	State:      StateRunning,
	ClientURL:  "http://localhost:8008",
	ServerName: "localhost",
}

// visibleLabels returns the text of every visible label in the window.
func visibleLabels(w fyne.Window) []string {
	var texts []string
	for _, o := range test.LaidOutObjects(w.Content()) {
		if l, ok := o.(*widget.Label); ok && l.Visible() {
			texts = append(texts, l.Text)
		}
	}
	return texts
}

func button(t *testing.T, w fyne.Window, text string) *widget.Button {
	t.Helper()
	for _, o := range test.LaidOutObjects(w.Content()) {
		if b, ok := o.(*widget.Button); ok && b.Text == text {
			return b
		}
	}
	t.Fatalf("no %q button in the window", text)
	return nil
}

func TestMainWindowShowsClientURL(t *testing.T) {
	a := test.NewTempApp(t)
	w, _ := NewMainWindow(a, fakeController{running})
	defer w.Close()

	if w.Title() != "Palpo" {
		t.Errorf("title = %q, want Palpo", w.Title())
	}
	labels := visibleLabels(w)
	for _, want := range []string{
		"Palpo",
		"Connect Element, FluffyChat or Nheko to:",
		"http://localhost:8008",
		"Your user IDs end in :localhost",
		"Server running",
	} {
		if !slices.Contains(labels, want) {
			t.Errorf("window does not show %q; labels: %q", want, labels)
		}
	}
}

func TestRefreshShowsError(t *testing.T) {
	a := test.NewTempApp(t)
	w, refresh := NewMainWindow(a, fakeController{Status{State: StateStarting}})
	defer w.Close()

	if !slices.Contains(visibleLabels(w), "Server starting…") {
		t.Fatalf("labels = %q, want the starting state", visibleLabels(w))
	}
	if b := button(t, w, "Copy address"); !b.Disabled() {
		t.Error("Copy address is enabled with no address to copy")
	}

	refresh(Status{State: StateError, Err: errors.New("listen tcp 127.0.0.1:8008: bind: address already in use")})
	want := "Server error: listen tcp 127.0.0.1:8008: bind: address already in use"
	if !slices.Contains(visibleLabels(w), want) {
		t.Errorf("labels = %q, want %q", visibleLabels(w), want)
	}

	refresh(running)
	labels := visibleLabels(w)
	if !slices.Contains(labels, "Server running") || slices.Contains(labels, want) {
		t.Errorf("after recovering, labels = %q", labels)
	}
	if b := button(t, w, "Copy address"); b.Disabled() {
		t.Error("Copy address is disabled while there is an address")
	}
}

func TestCopyAddressPutsURLOnClipboard(t *testing.T) {
	a := test.NewTempApp(t)
	w, refresh := NewMainWindow(a, fakeController{running})
	defer w.Close()

	test.Tap(button(t, w, "Copy address"))
	if got := a.Clipboard().Content(); got != running.ClientURL {
		t.Fatalf("clipboard = %q, want %q", got, running.ClientURL)
	}

	// The button copies the address shown now, not the one at construction.
	moved := running
	moved.ClientURL = "http://localhost:8448"
	refresh(moved)
	test.Tap(button(t, w, "Copy address"))
	if got := a.Clipboard().Content(); got != moved.ClientURL {
		t.Fatalf("clipboard after refresh = %q, want %q", got, moved.ClientURL)
	}
}

func TestNilControllerStartsInStartingState(t *testing.T) {
	a := test.NewTempApp(t)
	w, _ := NewMainWindow(a, nil)
	defer w.Close()
	if !slices.Contains(visibleLabels(w), "Server starting…") {
		t.Errorf("labels = %q, want the starting state", visibleLabels(w))
	}
}

func TestSetupTrayNeedsDesktopApp(t *testing.T) {
	a := test.NewTempApp(t)
	w, _ := NewMainWindow(a, fakeController{running})
	defer w.Close()
	if SetupTray(a, w) {
		t.Fatal("SetupTray installed a tray on the test app, which is not a desktop.App")
	}
}
