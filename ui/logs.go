package ui

import (
	"log/slog"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/palpo-im/palpo-desktop/app"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

// Log levels the Logs tab can show from.
var logLevels = []struct {
	label string
	level slog.Level
}{
	{"Everything", slog.LevelDebug},
	{"Information and above", slog.LevelInfo},
	{"Warnings and errors", slog.LevelWarn},
	{"Errors only", slog.LevelError},
}

// logsTab shows the server's log live, filtered by level, with Copy for
// bug reports.
type logsTab struct {
	d       *Desktop
	content fyne.CanvasObject

	level     *widget.Select
	requests  *widget.Check
	follow    *widget.Check
	list      *widget.List
	count     *widget.Label
	detail    *widget.Label // the selected line in full, wrapped
	copyLine  *widget.Button
	detailBox *fyne.Container

	min     slog.Level
	shown   []app.LogEntry
	lastSeq uint64
}

func newLogsTab(d *Desktop) *logsTab {
	l := &logsTab{d: d, min: slog.LevelInfo}
	labels := make([]string, len(logLevels))
	for i, lv := range logLevels {
		labels[i] = lv.label
	}
	l.level = widget.NewSelect(labels, func(label string) {
		for _, lv := range logLevels {
			if lv.label == label {
				l.min = lv.level
			}
		}
		l.lastSeq = 0 // show the whole buffer again under the new filter
		l.refresh()
	})
	// One line per HTTP request drowns everything else; they are there
	// for whoever asks.
	l.requests = widget.NewCheck("Show requests", func(bool) {
		l.lastSeq = 0
		l.refresh()
	})
	l.follow = widget.NewCheck("Follow new lines", nil)
	l.follow.SetChecked(true)
	l.count = widget.NewLabel("")
	l.list = widget.NewList(
		func() int { return len(l.shown) },
		func() fyne.CanvasObject {
			t := widget.NewLabel("")
			t.TextStyle = fyne.TextStyle{Monospace: true}
			t.Truncation = fyne.TextTruncateEllipsis
			return t
		},
		func(i widget.ListItemID, o fyne.CanvasObject) {
			if i >= len(l.shown) {
				return
			}
			lbl := o.(*widget.Label)
			e := l.shown[i]
			lbl.SetText(e.String())
			switch {
			case e.Level >= slog.LevelError:
				lbl.Importance = widget.DangerImportance
			case e.Level >= slog.LevelWarn:
				lbl.Importance = widget.WarningImportance
			default:
				lbl.Importance = widget.MediumImportance
			}
			lbl.Refresh()
		},
	)
	// A long line is cut at the window's edge; selecting it shows it
	// whole, wrapped, below the list.
	l.detail = wrapped("")
	l.detail.TextStyle = fyne.TextStyle{Monospace: true}
	l.detail.Selectable = true
	l.copyLine = widget.NewButtonWithIcon("Copy line", theme.ContentCopyIcon(), func() { d.copyText(l.detail.Text) })
	l.detailBox = container.NewBorder(widget.NewSeparator(), nil, nil, container.NewVBox(l.copyLine), l.detail)
	l.detailBox.Hide()
	l.list.OnSelected = func(i widget.ListItemID) {
		if i < len(l.shown) {
			l.detail.SetText(l.shown[i].String())
			l.detailBox.Show()
		}
	}
	l.list.OnUnselected = func(widget.ListItemID) { l.detailBox.Hide() }
	copyBtn := widget.NewButtonWithIcon("Copy all", theme.ContentCopyIcon(), func() { d.copyText(l.text()) })
	levelBox := container.NewGridWrap(fyne.NewSize(230, l.level.MinSize().Height), l.level)
	bar := container.NewHBox(widget.NewLabel("Show"), levelBox, l.requests, l.follow, copyBtn, l.count)
	hint := widget.NewLabel("Select a line to read it whole.")
	l.content = container.NewPadded(container.NewBorder(container.NewVBox(bar, hint), l.detailBox, nil, nil, l.list))
	l.level.SetSelectedIndex(1) // information and above, as the log file has
	return l
}

// refresh shows the buffer's entries at or above the chosen level.
func (l *logsTab) refresh() {
	entries := l.d.app.Logs().Entries()
	if n := len(entries); n > 0 && entries[n-1].Seq == l.lastSeq {
		return // nothing new
	}
	shown := l.shown[:0:0]
	for _, e := range entries {
		if e.Level >= l.min && (l.requests.Checked || !isRequestLine(e)) {
			shown = append(shown, e)
		}
	}
	l.shown = shown
	if n := len(entries); n > 0 {
		l.lastSeq = entries[n-1].Seq
	}
	l.count.SetText(plural(len(shown), "line"))
	l.list.Refresh()
	if l.follow.Checked && len(shown) > 0 {
		l.list.ScrollToBottom()
	}
}

// isRequestLine tells the one-per-request access log lines (httpapi's
// "request") apart; a failed request's warning or error stays visible.
func isRequestLine(e app.LogEntry) bool {
	return e.Message == httpapi.RequestLogMessage && e.Level < slog.LevelWarn
}

// text is the shown lines, for the clipboard.
func (l *logsTab) text() string {
	var b strings.Builder
	for _, e := range l.shown {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
