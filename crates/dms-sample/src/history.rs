//! The full-load history: strategies, and orders with their planned lifecycles, replayed in
//! time order to allocate ids and event ids up to the snapshot.

use rand::rngs::StdRng;
use rand::Rng;

use super::clock::{datetime, history_start, norm, snapshot, Sessions, HOUR, MINUTE, MS, SEC};
use super::rows::{Exec, Order, ORDER_BASE, SHARE};
use super::sim::{weighted_pick, Sim};
use super::vocab::*;

const EV_S_INS: u8 = 0;
const EV_S_UPD: u8 = 1;
const EV_O_INS: u8 = 2;
const EV_O_UPD: u8 = 3;
const EV_X_INS: u8 = 4;
const EV_X_INS_O_UPD: u8 = 5;

/// A historical change, replayed in time order to allocate event and execution ids.
struct Ev {
    time: i64,
    idx: u32,
    exec: u32,
    kind: u8,
}

/// Mean number of fills of a fully filled order, by order type.
const MEAN_FILLS_MARKET: f64 = 5.0;
const MEAN_FILLS_RESTING: f64 = 17.4;

/// Sentinels in a lifecycle plan.
const NONE: u8 = u8::MAX;

/// Splits `lots` into at most `k` positive pieces.
fn split(rng: &mut StdRng, lots: i64, k: usize) -> Vec<i64> {
    let k = (k as i64).clamp(1, lots.max(1));
    if k == 1 {
        return vec![lots];
    }
    let mut cuts: Vec<i64> = if k == lots {
        (1..lots).collect()
    } else {
        (0..k - 1).map(|_| rng.random_range(1..lots)).collect()
    };
    cuts.sort_unstable();
    cuts.dedup();
    let mut prev = 0;
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    for c in cuts {
        pieces.push(c - prev);
        prev = c;
    }
    pieces.push(lots - prev);
    pieces
}

impl Sim {
    fn fill_count(&mut self, o: &Order) -> usize {
        let mean = if o.order_type == MARKET {
            MEAN_FILLS_MARKET
        } else {
            MEAN_FILLS_RESTING
        };
        let u: f64 = self.rng.random();
        (1.0 - (1.0 - u).ln() * (mean - 1.0)).min(80.0) as usize
    }

    fn fill_gap(&mut self, o: &Order) -> i64 {
        if o.order_type == MARKET {
            self.rng.random_range(MS..1_500 * MS)
        } else {
            (10f64.powf(self.rng.random_range(-1.0..2.6)) * SEC as f64) as i64
        }
    }

    /// Builds the full-load state: the history of strategies, orders and executions up to
    /// the snapshot, with ids and event ids allocated in time order.
    pub(super) fn build_history(&mut self, n_strat: usize, n_orders: usize) {
        let snap = snapshot();
        let mut events: Vec<Ev> = Vec::with_capacity(n_orders * 12 + 2 * n_strat);
        let mut strategies = Vec::with_capacity(n_strat);
        let mut changed_at: Vec<Option<i64>> = Vec::with_capacity(n_strat);
        for i in 0..n_strat {
            let id = i as i64 + 1;
            let created = norm(history_start() + self.rng.random_range(0..6 * HOUR));
            let mut s = self.new_strategy(id, created);
            events.push(Ev {
                time: created,
                idx: i as u32,
                exec: 0,
                kind: EV_S_INS,
            });
            let r: f64 = self.rng.random();
            let status = if id == 1 || r >= 0.22 {
                S_ACTIVE
            } else if r < 0.12 {
                S_PAUSED
            } else {
                S_RETIRED
            };
            let mut at = None;
            if status != S_ACTIVE || self.rng.random_bool(0.3) {
                let t = norm(self.rng.random_range(history_start() + 24 * HOUR..snap));
                s.status = status;
                s.updated_at = t;
                if let Some(m) = s.max_notional.as_mut() {
                    *m = (*m / 2 + self.rng.random_range(0..*m)) / 100_000 * 100_000;
                    *m = (*m).max(100_000);
                }
                events.push(Ev {
                    time: t,
                    idx: i as u32,
                    exec: 0,
                    kind: EV_S_UPD,
                });
                at = Some(t);
            }
            changed_at.push(at);
            let u: f64 = self.rng.random();
            self.weights.push(0.1 + 4.0 * u.powi(4));
            strategies.push(s);
        }

        let sessions = Sessions::new(history_start(), snap);
        let snap_day = datetime(snap)
            .date()
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_micros();
        let mut orders: Vec<Order> = Vec::with_capacity(n_orders);
        let mut drafts: Vec<Exec> = Vec::with_capacity(n_orders * 10);
        let mut plan: Vec<(i64, u8, i64, u8)> = Vec::new();
        for i in 0..n_orders {
            let id = ORDER_BASE + 1 + i as i64;
            let f = (i as f64 + self.rng.random::<f64>()) / n_orders as f64;
            let t = norm(sessions.at(f));
            let k = weighted_pick(&mut self.rng, &self.weights, |k| {
                strategies[k].status == S_ACTIVE || changed_at[k].is_none_or(|c| c > t)
            })
            .unwrap_or(0);
            let mut o = self.new_order(id, k as i64 + 1, t);
            events.push(Ev {
                time: t,
                idx: i as u32,
                exec: 0,
                kind: EV_O_INS,
            });
            self.plan_history(&o, &mut plan);
            for &(time, xt, q, status) in &plan {
                if time > snap {
                    break;
                }
                let mut kind = EV_O_UPD;
                let mut exec = 0;
                if xt != NONE {
                    let x = self.make_exec(&o, xt, q, time);
                    o.cum = x.cum_qty;
                    exec = drafts.len() as u32;
                    drafts.push(x);
                    kind = if status == NONE {
                        EV_X_INS
                    } else {
                        EV_X_INS_O_UPD
                    };
                }
                if status != NONE {
                    o.status = status;
                    o.updated_at = time;
                }
                events.push(Ev {
                    time,
                    idx: i as u32,
                    exec,
                    kind,
                });
            }
            if matches!(o.status, O_NEW | O_PARTIAL) && o.created_at < snap_day && o.tif != GTC {
                // still working after its day: only a good-till-canceled order does that
                o.tif = GTC;
            }
            orders.push(o);
        }

        // Replay in time order (stable: same-instant changes keep their causal order).
        events.sort_by_key(|e| e.time);
        self.ex.rows.reserve(drafts.len());
        for ev in &events {
            let i = ev.idx as usize;
            match ev.kind {
                EV_S_INS | EV_S_UPD => strategies[i].event_id = self.next_event(),
                EV_O_INS | EV_O_UPD => orders[i].event_id = self.next_event(),
                _ => {
                    let mut x = std::mem::take(&mut drafts[ev.exec as usize]);
                    x.id = self.ex.next_id();
                    x.event_id = self.next_event();
                    self.ex.push(x);
                    if ev.kind == EV_X_INS_O_UPD {
                        orders[i].event_id = self.next_event();
                    }
                }
            }
        }
        drop(drafts);
        drop(events);
        for s in strategies {
            self.st.push(s);
        }
        for o in orders {
            if matches!(o.status, O_NEW | O_PARTIAL) {
                self.open.push(o.id);
            }
            self.ord.push(o);
        }
    }

    /// The lifecycle an order would have if nothing stopped it: (time, exec type or NONE,
    /// fill quantity, new order status or NONE).
    fn plan_history(&mut self, o: &Order, plan: &mut Vec<(i64, u8, i64, u8)>) {
        plan.clear();
        let r: f64 = self.rng.random();
        let mut intended = if r < 0.80 {
            O_FILLED
        } else if r < 0.88 {
            O_CANCELED
        } else if r < 0.91 {
            O_EXPIRED
        } else if r < 0.95 {
            O_REJECTED
        } else if r < 0.97 {
            O_PARTIAL
        } else {
            O_NEW
        };
        let resting_ok = matches!(o.tif, DAY | GTC) && o.order_type != MARKET;
        if matches!(intended, O_PARTIAL | O_NEW) && !resting_ok {
            intended = O_FILLED;
        }
        if intended == O_EXPIRED && (matches!(o.tif, IOC | FOK) || o.order_type == MARKET) {
            intended = O_CANCELED;
        }
        let mut t = o.created_at;
        if intended == O_REJECTED {
            plan.push((
                norm(t + self.rng.random_range(MS..250 * MS)),
                NONE,
                0,
                O_REJECTED,
            ));
            return;
        }
        t = norm(t + self.rng.random_range(2 * MS..400 * MS));
        plan.push((t, X_NEW, 0, NONE));
        let gran = if o.quantity % SHARE == 0 { SHARE } else { 1 };
        let lots = o.quantity / gran;
        let k = self.fill_count(o);
        let pieces = match intended {
            O_FILLED => split(&mut self.rng, lots, k),
            O_PARTIAL | O_CANCELED | O_EXPIRED => {
                let j = if intended == O_PARTIAL {
                    self.rng.random_range(1..=k)
                } else {
                    self.rng.random_range(0..=k / 2)
                };
                let j = j.min(lots as usize - 1);
                if j == 0 {
                    Vec::new()
                } else {
                    let mut p = split(&mut self.rng, lots, j + 1);
                    p.truncate(j.min(p.len() - 1));
                    p
                }
            }
            _ => Vec::new(),
        };
        let mut cum = 0;
        for p in pieces {
            t = norm(t + self.fill_gap(o));
            cum += p * gran;
            let status = if cum == o.quantity {
                O_FILLED
            } else {
                O_PARTIAL
            };
            plan.push((t, X_TRADE, p * gran, status));
        }
        match intended {
            O_CANCELED => {
                t = norm(t + self.fill_gap(o) * self.rng.random_range(1..20));
                plan.push((t, X_CANCELED, 0, O_CANCELED));
            }
            O_EXPIRED => {
                t = norm(t + self.rng.random_range(30 * MINUTE..8 * HOUR));
                plan.push((t, X_EXPIRED, 0, O_EXPIRED));
            }
            O_FILLED if self.rng.random_bool(0.03) => {
                t = norm(t + self.rng.random_range(50 * MS..2 * SEC));
                plan.push((t, X_REJECTED, 0, NONE));
            }
            _ => {}
        }
    }
}
