package daemon

import (
	"context"

	"github.com/telegen-sonic/telegen-sonic/pkg/aggregate"
	"github.com/telegen-sonic/telegen-sonic/pkg/datapath"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
	"github.com/telegen-sonic/telegen-sonic/pkg/reconciler"
)

// datapathAdapter gives the reconciler the eBPF datapath in its own terms.
type datapathAdapter struct{ m *datapath.Manager }

func (a datapathAdapter) Start(ctx context.Context, spec jobspec.Spec, src reconciler.Source) (reconciler.Run, error) {
	run, err := a.m.Start(ctx, datapath.Job{
		ID:        spec.ID,
		Interface: src.Interface, // for direct jobs SONiC names a port's netdev after the port
		Ingress:   spec.Direction.Ingress(),
		Egress:    spec.Direction.Egress(),
	})
	if err != nil {
		return nil, err
	}
	return runAdapter{run}, nil
}

func (a datapathAdapter) Adopt(_ context.Context, id string) (reconciler.Run, error) {
	run, err := a.m.Adopt(id)
	if err != nil {
		return nil, err
	}
	return runAdapter{run}, nil
}

func (a datapathAdapter) CleanUp(_ context.Context, keep func(string) bool) error {
	return a.m.CleanUp(keep)
}

type runAdapter struct{ *datapath.Run }

func (r runAdapter) Snapshot() (aggregate.Snapshot, error) {
	c, err := r.Run.Counters()
	return aggregate.Snapshot{
		Ingress: aggregate.DirectionCounts{Packets: c.IngressPackets, Bytes: c.IngressBytes},
		Egress:  aggregate.DirectionCounts{Packets: c.EgressPackets, Bytes: c.EgressBytes},
	}, err
}
