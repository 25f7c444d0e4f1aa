//! One CDC batch: the deliberate edge cases every file gets (insert then delete, an update
//! to identical values, a delete of a never-seen key), scheduled among the random flow.

use std::collections::HashSet;

use rand::Rng;

use super::clock::{cdc_commit_micros, norm, BATCH_STEP, HOUR, MS, SEC};
use super::rows::*;
use super::sim::Sim;
use super::state::{delete, insert, phantom_delete, update, Logs};
use super::vocab::*;

/// Deliberate and scheduled changes of a CDC batch.
#[derive(Clone, Copy, Debug)]
enum Edge {
    StrategyUpdate,
    StrategyNew,
    StrategyInsDel,
    StrategyDel(i64),
    /// An update to identical values of a key picked at the start of the batch.
    Same(u8, Option<i64>),
    StrategyPhantom,
    OrderInsDel,
    OrderCancelTemp(i64),
    OrderDel(i64),
    OrderPhantom,
    ExecInsDel,
    ExecDel(i64),
    ExecPhantom,
}

pub(super) struct Batch {
    b: usize,
    pub(super) logs: Logs,
    pub(super) reserved: HashSet<(u8, i64)>,
    pub(super) hot: Vec<i64>,
    start: i64,
    end: i64,
    last_t: i64,
    target: usize,
    /// Executions with an index below this existed before the batch.
    pub(super) exec_floor: usize,
}

impl Batch {
    fn progress(&self) -> f64 {
        (self.logs.o.ops.len() + self.logs.e.ops.len()) as f64 / (2 * self.target) as f64
    }
}

pub(super) const T_STRAT: u8 = 0;
pub(super) const T_ORDER: u8 = 1;
pub(super) const T_EXEC: u8 = 2;

impl Sim {
    pub(super) fn tick(&mut self, bt: &mut Batch) -> i64 {
        let span = bt.end - bt.start;
        let f = bt.progress().min(1.0);
        let base = bt.start + MS + (f * (span - 2 * MS) as f64) as i64;
        let t = (base + self.rng.random_range(0..500))
            .max(bt.last_t + 1)
            .min(bt.end - 1);
        let t = norm(t);
        bt.last_t = t;
        t
    }

    pub(super) fn run_batch(&mut self, b: usize, target: usize) -> Logs {
        let end = cdc_commit_micros(b);
        let mut bt = Batch {
            b,
            logs: Logs::default(),
            reserved: HashSet::new(),
            hot: Vec::new(),
            start: end - BATCH_STEP,
            end,
            last_t: end - BATCH_STEP,
            target,
            exec_floor: self.ex.rows.len(),
        };
        for _ in 0..30 {
            if let Some(id) = self.pick_open_from_all(&bt) {
                bt.hot.push(id);
            }
        }
        let mut pending: Vec<(f64, Edge)> = Vec::new();
        let same_s = self.pick_same(&mut bt, T_STRAT);
        let same_o = self.pick_same(&mut bt, T_ORDER);
        let same_e = self.pick_same(&mut bt, T_EXEC);
        for e in [
            Edge::StrategyInsDel,
            Edge::Same(T_STRAT, same_s),
            Edge::StrategyPhantom,
            Edge::OrderInsDel,
            Edge::Same(T_ORDER, same_o),
            Edge::OrderPhantom,
            Edge::ExecInsDel,
            Edge::Same(T_EXEC, same_e),
            Edge::ExecPhantom,
        ] {
            pending.push((self.rng.random_range(0.0..0.9), e));
        }
        for _ in 0..self.rng.random_range(1..=3) {
            pending.push((self.rng.random(), Edge::StrategyUpdate));
        }
        if self.rng.random_bool(0.25) {
            pending.push((self.rng.random(), Edge::StrategyNew));
        }
        loop {
            let progress = bt.progress();
            self.run_due(&mut bt, &mut pending, progress);
            if bt.logs.o.ops.len() >= target && bt.logs.e.ops.len() >= target {
                break;
            }
            self.random_action(&mut bt);
        }
        self.run_due(&mut bt, &mut pending, f64::INFINITY);
        bt.logs
    }

    fn run_due(&mut self, bt: &mut Batch, pending: &mut Vec<(f64, Edge)>, upto: f64) {
        loop {
            let mut best: Option<usize> = None;
            for (i, (at, _)) in pending.iter().enumerate() {
                if *at <= upto && best.is_none_or(|b| *at < pending[b].0) {
                    best = Some(i);
                }
            }
            let Some(i) = best else { break };
            let (at, e) = pending.remove(i);
            if let Some(next) = self.edge(bt, e) {
                let later = at + self.rng.random::<f64>() * (1.0 - at).max(0.0);
                pending.push((later.max(at), next));
            }
        }
    }

    /// Performs a scheduled change; may return a follow-up to schedule later in the batch.
    fn edge(&mut self, bt: &mut Batch, e: Edge) -> Option<Edge> {
        let t = self.tick(bt);
        match e {
            Edge::StrategyUpdate => self.strategy_update(bt, t),
            Edge::StrategyNew => {
                let id = self.st.next_id();
                let mut s = self.new_strategy(id, t);
                s.event_id = self.next_event();
                self.weights.push(0.5 + self.rng.random::<f64>());
                insert(&mut self.st, &mut bt.logs.s, s);
            }
            Edge::StrategyInsDel => {
                let id = self.st.next_id();
                let mut s = self.new_strategy(id, t);
                s.name = "Scratch strategy (created by mistake)".into();
                s.status = S_PAUSED;
                s.event_id = self.next_event();
                self.weights.push(0.0);
                bt.reserved.insert((T_STRAT, id));
                insert(&mut self.st, &mut bt.logs.s, s);
                return Some(Edge::StrategyDel(id));
            }
            Edge::StrategyDel(id) => delete(&mut self.st, &mut bt.logs.s, id),
            Edge::StrategyPhantom => {
                let id = STRATEGY_PHANTOM + bt.b as i64;
                let created = norm(t - self.rng.random_range(HOUR..20 * 24 * HOUR));
                let mut s = self.new_strategy(id, created);
                s.status = S_RETIRED;
                s.updated_at = norm(created + self.rng.random_range(0..HOUR));
                s.event_id = self.rng.random_range(1..=self.event);
                phantom_delete(&self.st, &mut bt.logs.s, s);
            }
            Edge::OrderInsDel => {
                let sid = self.pick_active_strategy();
                let id = self.ord.next_id();
                let mut o = self.new_order(id, sid, t);
                o.event_id = self.next_event();
                bt.reserved.insert((T_ORDER, id));
                insert(&mut self.ord, &mut bt.logs.o, o);
                return Some(if self.rng.random_bool(0.5) {
                    Edge::OrderCancelTemp(id)
                } else {
                    Edge::OrderDel(id)
                });
            }
            Edge::OrderCancelTemp(id) => {
                let mut o = self.ord.get(id).expect("exists").clone();
                o.status = O_CANCELED;
                o.updated_at = t;
                o.event_id = self.next_event();
                update(&mut self.ord, &mut bt.logs.o, o);
                return Some(Edge::OrderDel(id));
            }
            Edge::OrderDel(id) => delete(&mut self.ord, &mut bt.logs.o, id),
            Edge::OrderPhantom => {
                let id = ORDER_PHANTOM + bt.b as i64;
                let created = norm(t - self.rng.random_range(HOUR..20 * 24 * HOUR));
                let mut o = self.new_order(id, 1, created);
                o.status = O_CANCELED;
                o.updated_at = norm(created + self.rng.random_range(SEC..HOUR));
                o.event_id = self.rng.random_range(1..=self.event);
                phantom_delete(&self.ord, &mut bt.logs.o, o);
            }
            Edge::ExecInsDel => {
                let reserved = &bt.reserved;
                let order_id = self
                    .ord
                    .random_key(&mut self.rng, usize::MAX, |o| {
                        !reserved.contains(&(T_ORDER, o.id))
                    })
                    .or_else(|| self.ord.random_key(&mut self.rng, usize::MAX, |_| true))
                    .expect("orders exist");
                let o = self.ord.get(order_id).expect("exists").clone();
                let mut x = self.make_exec(&o, X_NEW, 0, t);
                x.cum_qty = o.cum;
                x.leaves_qty = o.quantity - o.cum;
                x.text = Some("Duplicate acknowledgement, purged by reconciliation".into());
                x.id = self.ex.next_id();
                x.event_id = self.next_event();
                bt.reserved.insert((T_EXEC, x.id));
                let id = x.id;
                insert(&mut self.ex, &mut bt.logs.e, x);
                return Some(Edge::ExecDel(id));
            }
            Edge::ExecDel(id) => delete(&mut self.ex, &mut bt.logs.e, id),
            Edge::Same(table, id) => {
                let id = id.or_else(|| self.pick_same(bt, table))?;
                match table {
                    T_STRAT => {
                        let row = self.st.get(id).expect("reserved rows stay").clone();
                        update(&mut self.st, &mut bt.logs.s, row);
                    }
                    T_ORDER => {
                        let row = self.ord.get(id).expect("reserved rows stay").clone();
                        update(&mut self.ord, &mut bt.logs.o, row);
                    }
                    _ => {
                        let row = self.ex.get(id).expect("reserved rows stay").clone();
                        update(&mut self.ex, &mut bt.logs.e, row);
                    }
                }
            }
            Edge::ExecPhantom => {
                let order_id = self
                    .ord
                    .random_key(&mut self.rng, usize::MAX, |_| true)
                    .expect("orders exist");
                let o = self.ord.get(order_id).expect("exists").clone();
                let when = norm(t - self.rng.random_range(SEC..HOUR));
                let mut x = self.make_exec(&o, X_CANCELED, 0, when);
                x.id = EXEC_PHANTOM + bt.b as i64;
                x.event_id = self.rng.random_range(1..=self.event);
                phantom_delete(&self.ex, &mut bt.logs.e, x);
            }
        }
        None
    }

    /// Picks (and reserves, so nothing else touches it in the batch) the key of the
    /// deliberate update to identical values; preferably a row untouched so far.
    fn pick_same(&mut self, bt: &mut Batch, table: u8) -> Option<i64> {
        let logs = &bt.logs;
        let reserved = &bt.reserved;
        let pick = match table {
            T_STRAT => self
                .st
                .random_key(&mut self.rng, usize::MAX, |s| {
                    !logs.s.touched(s.id) && !reserved.contains(&(T_STRAT, s.id))
                })
                .or_else(|| self.st.random_key(&mut self.rng, usize::MAX, |_| true)),
            T_ORDER => {
                let free =
                    |o: &Order| !logs.o.touched(o.id) && !reserved.contains(&(T_ORDER, o.id));
                self.ord
                    .random_key(&mut self.rng, usize::MAX, |o| {
                        free(o) && !matches!(o.status, O_NEW | O_PARTIAL)
                    })
                    .or_else(|| self.ord.random_key(&mut self.rng, usize::MAX, free))
                    .or_else(|| self.ord.random_key(&mut self.rng, usize::MAX, |_| true))
            }
            _ => {
                let free = |x: &Exec| !logs.e.touched(x.id) && !reserved.contains(&(T_EXEC, x.id));
                self.ex
                    .random_key(&mut self.rng, bt.exec_floor, free)
                    .or_else(|| self.ex.random_key(&mut self.rng, usize::MAX, free))
                    .or_else(|| self.ex.random_key(&mut self.rng, usize::MAX, |_| true))
            }
        }?;
        bt.reserved.insert((table, pick));
        Some(pick)
    }
}
