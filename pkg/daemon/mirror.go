package daemon

import (
	"context"
	"log/slog"

	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
	"github.com/telegen-sonic/telegen-sonic/pkg/mirror"
	"github.com/telegen-sonic/telegen-sonic/pkg/reconciler"
	"github.com/telegen-sonic/telegen-sonic/pkg/sonicdb"
)

// newMirror gives the reconciler SONiC mirror sessions: MIRROR_SESSION (and ACL pre-filters) in
// CONFIG_DB, orchagent's verdicts from STATE_DB, settings from TELEGEN|global as they stand when
// each job starts.
func newMirror(configDB, stateDB *sonicdb.DB, logger *slog.Logger) reconciler.Mirror {
	settings := func(ctx context.Context) (jobspec.Globals, error) { return configStore{configDB}.Globals(ctx) }
	return mirrorAdapter{mirror.New(configDB, stateDB, settings, logger.With("component", "mirror"))}
}

// mirrorAdapter gives the reconciler the mirror package in its own terms.
type mirrorAdapter struct{ m *mirror.Mirror }

func (a mirrorAdapter) Create(ctx context.Context, spec jobspec.Spec) (reconciler.MirrorSession, error) {
	s, err := a.m.Create(ctx, spec)
	if err != nil {
		return reconciler.MirrorSession{}, err
	}
	return reconciler.MirrorSession{
		Session: s.Name,
		Source: reconciler.Source{
			Interface:       s.Sink,
			Mirrored:        true,
			ERSPAN:          s.Type == mirror.TypeERSPAN,
			ERSPANSessionID: s.SessionID, // jobspec.AnySessionID (-1) when no one knows it
		},
		Note: s.Note,
	}, nil
}

func (a mirrorAdapter) Delete(ctx context.Context, jobID string) error {
	return a.m.Delete(ctx, jobID)
}

func (a mirrorAdapter) CleanUp(ctx context.Context, keep func(string) bool) error {
	return a.m.CleanUp(ctx, keep)
}
