package scheduler

import (
	"sort"
)

// spreadTree orders the candidate nodes of one task group. Each level of
// the tree is one placement preference: a branch's children group its
// nodes by their value of that label, nodes without the label forming a
// child of their own. Each leaf holds its nodes in a heap keyed by (tasks
// of the service, tasks in total, node ID). Picking a node walks from the
// root to the child with the fewest tasks of the service (among children
// that still have a usable node), down to a leaf, and takes its heap's
// top, so a pick costs O(depth·fan-out + log nodes). Without preferences
// the root is the only leaf.
//
// Only candidates are in the tree: tasks on nodes that are unavailable or
// fail the constraints do not count toward their zone. A branch's count
// does include tasks on candidates later dropped for lack of resources or
// by the replica limit: tasks already in a zone count toward its share even
// when that zone's nodes are full.
type spreadTree struct {
	root *branch
	path []*branch // scratch for pick
}

type branch struct {
	svcTasks int       // tasks of the service on the branch's nodes
	live     int       // nodes still in the branch's heaps
	children []*branch // ordered by label value, missing label last
	heap     nodeHeap  // leaves only
}

// newSpreadTree builds the tree over the candidates, each with its count
// of the service's tasks. Without preferences the candidates slice itself
// becomes the heap.
func newSpreadTree(candidates []heapEntry, prefs []spreadKey) *spreadTree {
	return &spreadTree{
		root: buildBranch(candidates, prefs),
		path: make([]*branch, 0, len(prefs)+1),
	}
}

func buildBranch(entries []heapEntry, prefs []spreadKey) *branch {
	b := &branch{live: len(entries)}
	for i := range entries {
		b.svcTasks += entries[i].svcTasks
	}
	if len(prefs) == 0 {
		b.heap = nodeHeap(entries)
		b.heap.init()
		return b
	}

	type bucket struct {
		value   string
		missing bool
		entries []heapEntry
	}
	var buckets []*bucket
	present := make(map[string]*bucket)
	var missing *bucket
	for _, e := range entries {
		v, ok := prefs[0].value(e.node.info.Node)
		var bk *bucket
		if ok {
			if bk = present[v]; bk == nil {
				bk = &bucket{value: v}
				present[v] = bk
				buckets = append(buckets, bk)
			}
		} else {
			if missing == nil {
				missing = &bucket{missing: true}
				buckets = append(buckets, missing)
			}
			bk = missing
		}
		bk.entries = append(bk.entries, e)
	}
	sort.Slice(buckets, func(i, j int) bool {
		a, c := buckets[i], buckets[j]
		if a.missing != c.missing {
			return c.missing
		}
		return a.value < c.value
	})
	b.children = make([]*branch, len(buckets))
	for i, bk := range buckets {
		b.children[i] = buildBranch(bk.entries, prefs[1:])
	}
	return b
}

// pick returns the best node that passes r's dynamic filters and accounts
// for one task of r on it, or returns nil when no node is left. Nodes that
// fail are removed for good.
func (t *spreadTree) pick(r *requirements) *workNode {
	for t.root.live > 0 {
		path := t.path[:0]
		b := t.root
		for {
			path = append(path, b)
			if b.children == nil {
				break
			}
			b = b.leastLoadedChild()
		}
		t.path = path

		top := &b.heap[0]
		n := top.node
		if r.dynamicCheck(&n.info) != pass {
			b.heap.pop()
			for _, p := range path {
				p.live--
			}
			continue
		}
		n.info.add(r.serviceID, r.reserve, r.hostPorts)
		top.svcTasks++
		b.heap.down(0)
		for _, p := range path {
			p.svcTasks++
		}
		return n
	}
	return nil
}

// leastLoadedChild returns the first child with a usable node and the
// fewest tasks of the service. The caller ensures b.live > 0.
func (b *branch) leastLoadedChild() *branch {
	var best *branch
	for _, c := range b.children {
		if c.live > 0 && (best == nil || c.svcTasks < best.svcTasks) {
			best = c
		}
	}
	return best
}

// heapEntry is a node in a leaf's heap, with its count of the service's
// tasks cached so comparisons need no map lookups.
type heapEntry struct {
	node     *workNode
	svcTasks int
}

// nodeHeap is a binary min-heap of nodes ordered by (tasks of the
// service, tasks in total, node ID).
type nodeHeap []heapEntry

// init orders the heap.
func (h nodeHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h nodeHeap) less(i, j int) bool {
	a, b := &h[i], &h[j]
	if a.svcTasks != b.svcTasks {
		return a.svcTasks < b.svcTasks
	}
	if a.node.info.ActiveTasks != b.node.info.ActiveTasks {
		return a.node.info.ActiveTasks < b.node.info.ActiveTasks
	}
	return a.node.id < b.node.id
}

// down restores the heap order below i after h[i] grew.
func (h nodeHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// pop removes the top entry.
func (h *nodeHeap) pop() {
	old := *h
	last := len(old) - 1
	old[0] = old[last]
	old[last] = heapEntry{}
	*h = old[:last]
	h.down(0)
}
