package voip

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLog routes pion/turn's logging to slog. pion reports per-packet trouble caused by clients
// (a vanished peer, a stray datagram) as warnings and errors that an operator cannot act on,
// so those go to debug, and its own debug and trace chatter is dropped.
type pionLog struct{ log *slog.Logger }

func (f pionLog) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log, scope: scope}
}

type pionLogger struct {
	log   *slog.Logger
	scope string
}

func (l pionLogger) debug(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug("turn: "+fmt.Sprintf(format, args...), "scope", l.scope)
	}
}

func (pionLogger) Trace(string)                    {}
func (pionLogger) Tracef(string, ...any)           {}
func (pionLogger) Debug(string)                    {}
func (pionLogger) Debugf(string, ...any)           {}
func (pionLogger) Info(string)                     {}
func (pionLogger) Infof(string, ...any)            {}
func (l pionLogger) Warn(msg string)               { l.debug("%s", msg) }
func (l pionLogger) Warnf(format string, a ...any) { l.debug(format, a...) }
func (l pionLogger) Error(msg string)              { l.debug("%s", msg) }
func (l pionLogger) Errorf(format string, a ...any) {
	l.debug(format, a...)
}
