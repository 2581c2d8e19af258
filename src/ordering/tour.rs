//! The similarity graph over the playable catalogue and the tour through it.
//!
//! The graph (petgraph, stable indices so tracks can come and go) links
//! every track to its `NEIGHBOURS` nearest tracks by [`distance`]. It is
//! what plugins query (`similar`) and what bounds the tour search: like
//! Lin–Kernighan's candidate sets, improving moves are only tried towards
//! graph neighbours, which keeps 2-opt near-linear per pass.
//!
//! The tour is an approximately shortest cycle through all playable tracks:
//! built by nearest neighbour (walking graph edges, with a full scan when
//! all neighbours are taken), then improved by 2-opt and Or-opt (segments of
//! 1–3 tracks moved, either way round) until no move gains. Only strictly
//! improving moves are applied, so improvement never lengthens the tour.
//!
//! Added tracks are put in at their cheapest place and removed tracks are
//! spliced out; the improvement then runs from the touched tracks only. The
//! library is cloned, updated off the audio path and swapped in whole.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use petgraph::stable_graph::{NodeIndex, StableUnGraph};
use petgraph::visit::{EdgeRef, NodeIndexable};

use super::distance::{distance, Features, Weights};
use crate::catalog::Track;

/// Nearest neighbours each track is linked to.
pub const NEIGHBOURS: usize = 10;
/// Smallest gain a move must make (floating-point noise is not a gain).
const EPS: f64 = 1e-9;
/// Longest segment Or-opt moves.
const OR_OPT_MAX: usize = 3;

#[derive(Debug, Clone)]
struct Node {
    track: Arc<Track>,
    features: Features,
}

/// The playable tracks, their similarity graph and the tour.
#[derive(Debug, Clone)]
pub struct Library {
    weights: Weights,
    graph: StableUnGraph<Node, f64>,
    by_id: HashMap<i64, NodeIndex>,
    /// The playable set, by id.
    tracks: Vec<Arc<Track>>,
    /// The cycle, as graph nodes.
    tour: Vec<NodeIndex>,
    /// Position in `tour` by node index.
    pos: Vec<usize>,
}

impl Library {
    pub fn new(weights: Weights) -> Library {
        Library {
            weights,
            graph: StableUnGraph::default(),
            by_id: HashMap::new(),
            tracks: Vec::new(),
            tour: Vec::new(),
            pos: Vec::new(),
        }
    }

    /// Builds the graph and an optimised tour over `tracks`.
    pub fn build(tracks: &[Arc<Track>], weights: Weights) -> Library {
        let mut l = Library::new(weights);
        l.update(tracks);
        l
    }

    /// Brings the library to exactly `tracks` (the new playable set).
    /// Returns whether anything changed. A track whose fields changed (it
    /// was analysed again) is removed and added again.
    pub fn update(&mut self, tracks: &[Arc<Track>]) -> bool {
        let wanted: HashMap<i64, &Arc<Track>> = tracks.iter().map(|t| (t.id, t)).collect();
        let mut gone: Vec<NodeIndex> = self
            .by_id
            .iter()
            .filter(|(id, ix)| wanted.get(id).is_none_or(|t| ***t != *self.graph[**ix].track))
            .map(|(_, ix)| *ix)
            .collect();
        gone.sort();
        let gone_set: std::collections::HashSet<NodeIndex> = gone.iter().copied().collect();
        let mut added: Vec<&Arc<Track>> =
            tracks.iter().filter(|t| self.by_id.get(&t.id).is_none_or(|ix| gone_set.contains(ix))).collect();
        added.sort_by_key(|t| t.id);
        added.dedup_by_key(|t| t.id);
        if gone.is_empty() && added.is_empty() {
            return false;
        }
        let kept = self.by_id.len() - gone.len();
        let seeds = if added.len() > kept {
            // Mostly new: build from scratch (link everything, construct).
            *self = Library::new(self.weights);
            let mut all: Vec<&Arc<Track>> = tracks.iter().collect();
            all.sort_by_key(|t| t.id);
            all.dedup_by_key(|t| t.id);
            for t in &all {
                self.add_node(t);
            }
            for t in &all {
                self.link_nearest(self.by_id[&t.id], false);
            }
            self.tour = self.nearest_neighbour_tour();
            self.reindex();
            self.tour.clone()
        } else {
            let mut seeds = Vec::new();
            for ix in gone {
                seeds.extend(self.remove_node(ix));
            }
            for t in &added {
                let ix = self.add_node(t);
                self.link_nearest(ix, true);
                self.insert_cheapest(ix);
                seeds.push(ix);
                seeds.extend(self.graph.neighbors(ix));
            }
            seeds
        };
        self.tracks = self.by_id.values().map(|ix| self.graph[*ix].track.clone()).collect();
        self.tracks.sort_by_key(|t| t.id);
        let seeds = seeds.into_iter().filter(|ix| self.graph.contains_node(*ix)).collect();
        self.improve(seeds);
        true
    }

    /// A copy brought to `tracks`, or `None` if it already holds exactly
    /// those (no copy made). For updating off a lock.
    pub fn with_tracks(&self, tracks: &[Arc<Track>]) -> Option<Library> {
        if self.tracks == tracks {
            return None;
        }
        let mut next = self.clone();
        next.update(tracks).then_some(next)
    }

    /// The playable set, by id.
    pub fn tracks(&self) -> &[Arc<Track>] {
        &self.tracks
    }

    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    pub fn track(&self, id: i64) -> Option<&Arc<Track>> {
        self.by_id.get(&id).map(|ix| &self.graph[*ix].track)
    }

    /// Distance between two playable tracks.
    pub fn distance(&self, a: i64, b: i64) -> Option<f64> {
        Some(self.dist(*self.by_id.get(&a)?, *self.by_id.get(&b)?))
    }

    /// The track after `id` in the tour.
    pub fn tour_next(&self, id: i64) -> Option<i64> {
        let ix = self.by_id.get(&id)?;
        let next = self.tour[(self.pos[ix.index()] + 1) % self.tour.len()];
        Some(self.graph[next].track.id)
    }

    /// The tour as track ids, starting anywhere.
    pub fn tour(&self) -> Vec<i64> {
        self.tour.iter().map(|ix| self.graph[*ix].track.id).collect()
    }

    pub fn tour_length(&self) -> f64 {
        self.cycle_length(&self.tour)
    }

    /// Length of any cycle through playable tracks, by id.
    pub fn order_length(&self, ids: &[i64]) -> Option<f64> {
        let nodes: Option<Vec<NodeIndex>> = ids.iter().map(|id| self.by_id.get(id).copied()).collect();
        Some(self.cycle_length(&nodes?))
    }

    /// The graph neighbours of `id`, nearest first, with their distances.
    pub fn neighbours(&self, id: i64) -> Vec<(i64, f64)> {
        let Some(ix) = self.by_id.get(&id) else { return Vec::new() };
        self.sorted_neighbours(*ix).into_iter().map(|(n, d)| (self.graph[n].track.id, d)).collect()
    }

    fn dist(&self, a: NodeIndex, b: NodeIndex) -> f64 {
        distance(&self.weights, &self.graph[a].features, &self.graph[b].features)
    }

    fn cycle_length(&self, nodes: &[NodeIndex]) -> f64 {
        let n = nodes.len();
        if n < 2 {
            return 0.0;
        }
        (0..n).map(|i| self.dist(nodes[i], nodes[(i + 1) % n])).sum()
    }

    fn sorted_neighbours(&self, ix: NodeIndex) -> Vec<(NodeIndex, f64)> {
        let mut v: Vec<(NodeIndex, f64)> = self.graph.edges(ix).map(|e| (e.target(), *e.weight())).collect();
        v.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        v
    }

    fn add_node(&mut self, t: &Arc<Track>) -> NodeIndex {
        let ix = self.graph.add_node(Node { track: t.clone(), features: Features::of(t) });
        self.by_id.insert(t.id, ix);
        ix
    }

    /// Links `ix` to its nearest tracks and, if `reciprocal`, every track
    /// that now has `ix` among its nearest to `ix` (a bulk build skips this:
    /// every track links its own nearest). Degrees stay within 2 × NEIGHBOURS.
    fn link_nearest(&mut self, ix: NodeIndex, reciprocal: bool) {
        let mut d: Vec<(NodeIndex, f64)> =
            self.graph.node_indices().filter(|o| *o != ix).map(|o| (o, self.dist(ix, o))).collect();
        let k = NEIGHBOURS.min(d.len());
        if k == 0 {
            return;
        }
        d.select_nth_unstable_by(k - 1, |a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let kth = d[k - 1].1;
        for (o, w) in d.iter().copied() {
            let near_for_o = reciprocal
                && (self.graph.edges(o).count() < NEIGHBOURS || self.graph.edges(o).any(|e| *e.weight() > w));
            if w <= kth || near_for_o {
                self.graph.update_edge(ix, o, w);
                self.prune(o);
            }
        }
        self.prune(ix);
    }

    /// Drops the farthest edges of a node linked to more than 2 × NEIGHBOURS.
    fn prune(&mut self, ix: NodeIndex) {
        while self.graph.edges(ix).count() > 2 * NEIGHBOURS {
            let far = self.graph.edges(ix).max_by(|a, b| a.weight().total_cmp(b.weight())).map(|e| e.id());
            if let Some(e) = far {
                self.graph.remove_edge(e);
            }
        }
    }

    /// Splices a node out of the tour and the graph; returns its tour
    /// neighbours (where improvement should look).
    fn remove_node(&mut self, ix: NodeIndex) -> Vec<NodeIndex> {
        let linked: Vec<NodeIndex> = self.graph.neighbors(ix).collect();
        let n = self.tour.len();
        let p = self.pos[ix.index()];
        let around = vec![self.tour[(p + n - 1) % n], self.tour[(p + 1) % n]];
        self.tour.remove(p);
        let id = self.graph[ix].track.id;
        self.by_id.remove(&id);
        self.graph.remove_node(ix);
        self.reindex();
        for o in linked {
            if self.graph.edges(o).count() < NEIGHBOURS {
                self.link_nearest(o, false);
            }
        }
        around.into_iter().filter(|o| *o != ix).collect()
    }

    /// Puts `ix` into the tour where it lengthens it least.
    fn insert_cheapest(&mut self, ix: NodeIndex) {
        let n = self.tour.len();
        let at = if n < 2 {
            n
        } else {
            (0..n)
                .map(|i| {
                    let (a, b) = (self.tour[i], self.tour[(i + 1) % n]);
                    (i + 1, self.dist(a, ix) + self.dist(ix, b) - self.dist(a, b))
                })
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(i, _)| i)
                .unwrap_or(n)
        };
        self.tour.insert(at, ix);
        self.reindex();
    }

    /// Nearest-neighbour construction from the track with the lowest id.
    fn nearest_neighbour_tour(&self) -> Vec<NodeIndex> {
        let mut nodes: Vec<NodeIndex> = self.graph.node_indices().collect();
        nodes.sort_by_key(|ix| self.graph[*ix].track.id);
        let Some(&start) = nodes.first() else { return Vec::new() };
        let mut visited = vec![false; self.graph.node_bound()];
        let mut tour = Vec::with_capacity(nodes.len());
        let mut at = start;
        loop {
            visited[at.index()] = true;
            tour.push(at);
            if tour.len() == nodes.len() {
                return tour;
            }
            let near = self.sorted_neighbours(at).into_iter().find(|(o, _)| !visited[o.index()]).map(|(o, _)| o);
            at = near.unwrap_or_else(|| {
                nodes
                    .iter()
                    .copied()
                    .filter(|o| !visited[o.index()])
                    .min_by(|a, b| self.dist(at, *a).total_cmp(&self.dist(at, *b)))
                    .expect("an unvisited node remains")
            });
        }
    }

    fn reindex(&mut self) {
        self.pos = vec![usize::MAX; self.graph.node_bound()];
        for (i, ix) in self.tour.iter().enumerate() {
            self.pos[ix.index()] = i;
        }
    }

    fn succ(&self, ix: NodeIndex) -> NodeIndex {
        self.tour[(self.pos[ix.index()] + 1) % self.tour.len()]
    }

    fn pred(&self, ix: NodeIndex) -> NodeIndex {
        let n = self.tour.len();
        self.tour[(self.pos[ix.index()] + n - 1) % n]
    }

    /// 2-opt and Or-opt from `seeds` until no move gains (don't-look bits:
    /// a node is looked at again only when a move touched it).
    fn improve(&mut self, seeds: Vec<NodeIndex>) {
        if self.tour.len() < 5 {
            // Up to 4 tracks, 2-opt alone is exact; fewer than 4 have one cycle.
            if self.tour.len() == 4 {
                self.improve_with(seeds, false);
            }
            return;
        }
        self.improve_with(seeds, true);
    }

    fn improve_with(&mut self, seeds: Vec<NodeIndex>, or_opt: bool) {
        let mut queued = vec![false; self.graph.node_bound()];
        let mut queue = VecDeque::new();
        for s in seeds {
            if !queued[s.index()] {
                queued[s.index()] = true;
                queue.push_back(s);
            }
        }
        // Each applied move shortens the tour, so this ends; the cap only
        // bounds the time on pathological inputs.
        let mut budget = 200 * self.tour.len() + 1000;
        while let Some(a) = queue.pop_front() {
            queued[a.index()] = false;
            let touched = self.two_opt(a).or_else(|| if or_opt { self.or_opt(a) } else { None });
            if let Some(touched) = touched {
                for t in touched {
                    if !queued[t.index()] {
                        queued[t.index()] = true;
                        queue.push_back(t);
                    }
                }
                budget -= 1;
                if budget == 0 {
                    return;
                }
            }
        }
    }

    /// Tries the 2-opt moves that add the edge (a, c) for a graph
    /// neighbour c; applies the first that gains.
    fn two_opt(&mut self, a: NodeIndex) -> Option<Vec<NodeIndex>> {
        for forward in [true, false] {
            let an = if forward { self.succ(a) } else { self.pred(a) };
            let d_a_an = self.dist(a, an);
            for (c, d_ac) in self.sorted_neighbours(a) {
                if d_ac >= d_a_an - EPS {
                    break;
                }
                let cn = if forward { self.succ(c) } else { self.pred(c) };
                if c == an || cn == a {
                    continue;
                }
                let gain = d_a_an + self.dist(c, cn) - d_ac - self.dist(an, cn);
                if gain > EPS {
                    // Forward: a an … c cn  ->  a c … an cn (reverse an..c).
                    // Backward: an a … cn c ->  an cn … a c (reverse a..cn).
                    if forward {
                        self.reverse(self.pos[an.index()], self.pos[c.index()]);
                    } else {
                        self.reverse(self.pos[a.index()], self.pos[cn.index()]);
                    }
                    return Some(vec![a, an, c, cn]);
                }
            }
        }
        None
    }

    /// Reverses the tour path from position `i` forward to position `j`
    /// (or, the same cycle, the rest of the tour if that is shorter).
    fn reverse(&mut self, i: usize, j: usize) {
        let n = self.tour.len();
        let len = (j + n - i) % n + 1;
        let (mut i, mut j, len) = if 2 * len > n { ((j + 1) % n, (i + n - 1) % n, n - len) } else { (i, j, len) };
        for _ in 0..len / 2 {
            self.tour.swap(i, j);
            self.pos[self.tour[i].index()] = i;
            self.pos[self.tour[j].index()] = j;
            i = (i + 1) % n;
            j = (j + n - 1) % n;
        }
    }

    /// Tries moving the segment of 1–3 tracks starting at `a` (forward) to
    /// sit next to a graph neighbour of either end, either way round.
    fn or_opt(&mut self, a: NodeIndex) -> Option<Vec<NodeIndex>> {
        let n = self.tour.len();
        for len in 1..=OR_OPT_MAX.min(n.saturating_sub(3)) {
            let start = self.pos[a.index()];
            let seg: Vec<NodeIndex> = (0..len).map(|k| self.tour[(start + k) % n]).collect();
            let (s1, sl) = (seg[0], seg[len - 1]);
            let (p, nx) = (self.pred(s1), self.succ(sl));
            let removed = self.dist(p, s1) + self.dist(sl, nx) - self.dist(p, nx);
            if removed <= EPS {
                continue;
            }
            let mut best: Option<(f64, NodeIndex, bool)> = None;
            let ends: Vec<NodeIndex> = self.sorted_neighbours(s1).into_iter().chain(self.sorted_neighbours(sl)).map(|(c, _)| c).collect();
            for c in ends {
                if seg.contains(&c) {
                    continue;
                }
                // Insert between c and its successor (the edge p–nx exists
                // once the segment is out, hence the remap).
                for (x, y) in [(c, self.succ(c)), (self.pred(c), c)] {
                    let (x, y) = (if x == sl { p } else { x }, if y == s1 { nx } else { y });
                    if seg.contains(&x) || seg.contains(&y) || (x == p && y == nx) {
                        continue;
                    }
                    let base = self.dist(x, y);
                    for reversed in [false, true] {
                        let (first, last) = if reversed { (sl, s1) } else { (s1, sl) };
                        let gain = removed - (self.dist(x, first) + self.dist(last, y) - base);
                        if gain > EPS && best.is_none_or(|(g, _, _)| gain > g) {
                            best = Some((gain, x, reversed));
                        }
                    }
                }
            }
            if let Some((_, x, reversed)) = best {
                let y = self.succ(x);
                self.tour.retain(|ix| !seg.contains(ix));
                let at = self.tour.iter().position(|ix| *ix == x).expect("x is in the tour") + 1;
                let mut moved = seg.clone();
                if reversed {
                    moved.reverse();
                }
                self.tour.splice(at..at, moved);
                self.reindex();
                return Some(vec![p, nx, s1, sl, x, if y == s1 { nx } else { y }]);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::seq::SliceRandom;
    use rand::SeedableRng;

    fn library(n: usize, seed: u64) -> Vec<Arc<Track>> {
        crate::synth::catalogue(n, seed)
    }

    fn assert_cycle(l: &Library, tracks: &[Arc<Track>]) {
        let mut ids = l.tour();
        ids.sort();
        let mut want: Vec<i64> = tracks.iter().map(|t| t.id).collect();
        want.sort();
        assert_eq!(ids, want, "the tour visits every playable track exactly once");
        for (i, ix) in l.tour.iter().enumerate() {
            assert_eq!(l.pos[ix.index()], i);
        }
        // Following tour_next from any track comes back to it after n steps.
        let first = want[0];
        let mut at = first;
        for _ in 0..want.len() {
            at = l.tour_next(at).unwrap();
        }
        assert_eq!(at, first);
    }

    #[test]
    fn tour_is_a_cycle_much_shorter_than_random_order() {
        let tracks = library(300, 7);
        let l = Library::build(&tracks, Weights::default());
        assert_cycle(&l, &tracks);
        let mut rng = SmallRng::seed_from_u64(1);
        let mut ids: Vec<i64> = tracks.iter().map(|t| t.id).collect();
        let random: f64 = (0..20)
            .map(|_| {
                ids.shuffle(&mut rng);
                l.order_length(&ids).unwrap()
            })
            .sum::<f64>()
            / 20.0;
        let ratio = l.tour_length() / random;
        println!("tour {:.1} vs random {:.1}: ratio {ratio:.3}", l.tour_length(), random);
        assert!(ratio < 0.3, "tour/random = {ratio:.3}");
    }

    #[test]
    fn improvement_never_lengthens_the_tour() {
        for seed in 0..20 {
            let tracks = library(20 + 7 * seed as usize, seed);
            let mut l = Library::new(Weights::default());
            for t in &tracks {
                l.add_node(t);
            }
            for t in &tracks {
                l.link_nearest(l.by_id[&t.id], false);
            }
            // A random start, so there is plenty to improve.
            let mut rng = SmallRng::seed_from_u64(seed);
            l.tour = l.graph.node_indices().collect();
            l.tour.shuffle(&mut rng);
            l.reindex();
            let before = l.tour_length();
            // One move at a time: each must shorten the cycle.
            let nodes = l.tour.clone();
            for a in nodes {
                let len = l.tour_length();
                if l.two_opt(a).is_some() {
                    assert!(l.tour_length() < len, "2-opt lengthened the tour");
                }
                let len = l.tour_length();
                if l.or_opt(a).is_some() {
                    assert!(l.tour_length() < len, "Or-opt lengthened the tour");
                }
            }
            l.improve(l.tour.clone());
            assert!(l.tour_length() <= before);
            assert_cycle(&l, &tracks);
        }
    }

    #[test]
    fn incremental_updates_keep_a_good_cycle() {
        let all = library(200, 3);
        let mut l = Library::build(&all[..150], Weights::default());
        assert_cycle(&l, &all[..150]);
        // Add 50, remove 30, change one (re-analysed).
        assert!(l.update(&all));
        assert_cycle(&l, &all);
        let mut fewer: Vec<Arc<Track>> = all.iter().filter(|t| t.id % 7 != 0).cloned().collect();
        let mut changed = (*fewer[3]).clone();
        changed.bpm *= 1.5;
        fewer[3] = Arc::new(changed);
        assert!(l.update(&fewer));
        assert_cycle(&l, &fewer);
        assert!(!l.update(&fewer), "same set: no change");
        let fresh = Library::build(&fewer, Weights::default());
        let ratio = l.tour_length() / fresh.tour_length();
        println!("incremental {:.2} vs rebuilt {:.2}: {ratio:.3}", l.tour_length(), fresh.tour_length());
        assert!(ratio < 1.25, "incremental tour {ratio:.3} x the rebuilt one");
        // Down to nothing and back.
        assert!(l.update(&[]));
        assert!(l.is_empty() && l.tour().is_empty());
        l.update(&all[..2]);
        assert_cycle(&l, &all[..2]);
    }
}
