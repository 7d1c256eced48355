package reconciler

import (
	"sync"
	"time"
)

// workQueue is a FIFO of job ids with de-duplication: an id waiting in the queue is not added
// twice, so a burst of keyspace events on one key costs one reconcile. Safe for concurrent use.
type workQueue struct {
	mu     sync.Mutex
	order  []string
	queued map[string]bool
	timers map[*time.Timer]struct{}
	closed bool
	ready  chan struct{} // capacity 1: "something may be queued"
}

func newWorkQueue() *workQueue {
	return &workQueue{
		queued: make(map[string]bool),
		timers: make(map[*time.Timer]struct{}),
		ready:  make(chan struct{}, 1),
	}
}

// Add queues id unless it is already waiting.
func (q *workQueue) Add(id string) {
	q.mu.Lock()
	if !q.closed && !q.queued[id] {
		q.queued[id] = true
		q.order = append(q.order, id)
	}
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// AddAfter queues id once d has passed.
func (q *workQueue) AddAfter(id string, d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		q.mu.Lock()
		delete(q.timers, t)
		q.mu.Unlock()
		q.Add(id)
	})
	q.timers[t] = struct{}{}
}

// Pop takes the oldest id; ok is false when the queue is empty.
func (q *workQueue) Pop() (id string, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.order) == 0 {
		return "", false
	}
	id = q.order[0]
	q.order[0] = ""
	q.order = q.order[1:]
	delete(q.queued, id)
	return id, true
}

// Ready fires when ids may be waiting.
func (q *workQueue) Ready() <-chan struct{} { return q.ready }

// Close stops every pending timer; later adds are dropped.
func (q *workQueue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	for t := range q.timers {
		t.Stop()
	}
	clear(q.timers)
}
