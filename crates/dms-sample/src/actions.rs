//! The random changes of a CDC batch: new orders, trades, cancels and expiries, amends,
//! rejected cancels, execution corrections and busts.

use rand::Rng;

use super::cdc::{Batch, T_EXEC, T_ORDER, T_STRAT};
use super::rows::{CENT, SHARE};
use super::sim::{round_to, weighted_pick, Sim};
use super::state::{delete, insert, update};
use super::vocab::*;

impl Sim {
    pub(super) fn strategy_update(&mut self, bt: &mut Batch, t: i64) {
        let reserved = &bt.reserved;
        let Some(id) = self.st.random_key(&mut self.rng, usize::MAX, |s| {
            !reserved.contains(&(T_STRAT, s.id))
        }) else {
            return;
        };
        let mut s = self.st.get(id).expect("exists").clone();
        let r: f64 = self.rng.random();
        match s.status {
            S_ACTIVE if id != 1 && r < 0.3 => s.status = S_PAUSED,
            S_PAUSED if r < 0.5 => s.status = S_ACTIVE,
            _ if r < 0.75 && s.max_notional.is_some() => {
                let m = s.max_notional.expect("some");
                s.max_notional =
                    Some((m / 2 + self.rng.random_range(0..m)).max(100_000) / 100_000 * 100_000);
            }
            _ => s.name = self.strategy_name(),
        }
        s.updated_at = t.max(s.updated_at);
        s.event_id = self.next_event();
        update(&mut self.st, &mut bt.logs.s, s);
    }

    pub(super) fn pick_active_strategy(&mut self) -> i64 {
        let st = &self.st;
        weighted_pick(&mut self.rng, &self.weights, |i| {
            st.rows[i].as_ref().is_some_and(|s| s.status == S_ACTIVE)
        })
        .or_else(|| weighted_pick(&mut self.rng, &self.weights, |i| st.rows[i].is_some()))
        .map_or(1, |i| i as i64 + 1)
    }

    fn is_open(&self, bt: &Batch, id: i64) -> bool {
        !bt.reserved.contains(&(T_ORDER, id))
            && self
                .ord
                .get(id)
                .is_some_and(|o| matches!(o.status, O_NEW | O_PARTIAL))
    }

    pub(super) fn pick_open_from_all(&mut self, bt: &Batch) -> Option<i64> {
        for _ in 0..16 {
            if self.open.is_empty() {
                return None;
            }
            let i = self.rng.random_range(0..self.open.len());
            let id = self.open[i];
            if self.is_open(bt, id) {
                return Some(id);
            }
            if self
                .ord
                .get(id)
                .is_none_or(|o| !matches!(o.status, O_NEW | O_PARTIAL))
            {
                self.open.swap_remove(i);
            }
        }
        None
    }

    fn pick_open(&mut self, bt: &mut Batch) -> Option<i64> {
        if self.rng.random_bool(0.7) {
            for _ in 0..8 {
                if bt.hot.is_empty() {
                    break;
                }
                let i = self.rng.random_range(0..bt.hot.len());
                let id = bt.hot[i];
                if self.is_open(bt, id) {
                    return Some(id);
                }
                bt.hot.swap_remove(i);
            }
        }
        self.pick_open_from_all(bt)
    }

    pub(super) fn random_action(&mut self, bt: &mut Batch) {
        let r = self.rng.random_range(0..100);
        let done = match r {
            0..24 => false,
            24..70 | 96..100 => self.act_trade(bt),
            70..76 => self.act_close(bt, X_CANCELED, O_CANCELED),
            76..78 => self.act_close(bt, X_EXPIRED, O_EXPIRED),
            78..83 => self.act_amend(bt),
            83..86 => self.act_cancel_reject(bt),
            86..93 => self.act_correct(bt),
            _ => self.act_bust(bt),
        };
        if !done {
            self.act_new_order(bt);
        }
    }

    fn act_new_order(&mut self, bt: &mut Batch) {
        let t = self.tick(bt);
        let sid = self.pick_active_strategy();
        let id = self.ord.next_id();
        let mut o = self.new_order(id, sid, t);
        o.event_id = self.next_event();
        insert(&mut self.ord, &mut bt.logs.o, o.clone());
        let t = self.tick(bt);
        if self.rng.random_bool(0.04) {
            o.status = O_REJECTED;
            o.updated_at = t;
            o.event_id = self.next_event();
            update(&mut self.ord, &mut bt.logs.o, o);
            return;
        }
        let mut x = self.make_exec(&o, X_NEW, 0, t);
        x.id = self.ex.next_id();
        x.event_id = self.next_event();
        insert(&mut self.ex, &mut bt.logs.e, x);
        self.open.push(id);
        bt.hot.push(id);
    }

    fn act_trade(&mut self, bt: &mut Batch) -> bool {
        let Some(id) = self.pick_open(bt) else {
            return false;
        };
        let t = self.tick(bt);
        let mut o = self.ord.get(id).expect("open order exists").clone();
        let gran = if o.quantity % SHARE == 0 { SHARE } else { 1 };
        let leaves = (o.quantity - o.cum) / gran;
        let lots =
            if o.order_type == MARKET || o.tif == FOK || leaves <= 1 || self.rng.random_bool(0.3) {
                leaves
            } else {
                ((leaves as f64 * self.rng.random_range(0.1..0.6)) as i64).clamp(1, leaves)
            };
        let mut x = self.make_exec(&o, X_TRADE, lots * gran, t);
        x.id = self.ex.next_id();
        x.event_id = self.next_event();
        o.cum = x.cum_qty;
        insert(&mut self.ex, &mut bt.logs.e, x);
        o.status = if o.cum == o.quantity {
            O_FILLED
        } else {
            O_PARTIAL
        };
        o.updated_at = t;
        o.event_id = self.next_event();
        let ioc_rest = o.status == O_PARTIAL && o.tif == IOC;
        update(&mut self.ord, &mut bt.logs.o, o.clone());
        if ioc_rest {
            // immediate-or-cancel: the unfilled rest is canceled right away
            let t = self.tick(bt);
            let mut x = self.make_exec(&o, X_CANCELED, 0, t);
            x.id = self.ex.next_id();
            x.event_id = self.next_event();
            insert(&mut self.ex, &mut bt.logs.e, x);
            o.status = O_CANCELED;
            o.updated_at = t;
            o.event_id = self.next_event();
            update(&mut self.ord, &mut bt.logs.o, o);
        }
        true
    }

    fn act_close(&mut self, bt: &mut Batch, exec_type: u8, status: u8) -> bool {
        let Some(id) = self.pick_open(bt) else {
            return false;
        };
        let t = self.tick(bt);
        let mut o = self.ord.get(id).expect("open order exists").clone();
        let mut x = self.make_exec(&o, exec_type, 0, t);
        x.id = self.ex.next_id();
        x.event_id = self.next_event();
        insert(&mut self.ex, &mut bt.logs.e, x);
        o.status = status;
        o.updated_at = t;
        o.event_id = self.next_event();
        update(&mut self.ord, &mut bt.logs.o, o);
        true
    }

    fn act_amend(&mut self, bt: &mut Batch) -> bool {
        let Some(id) = self.pick_open(bt) else {
            return false;
        };
        let mut o = self.ord.get(id).expect("open order exists").clone();
        let f = 1.0 + self.rng.random_range(-0.005..0.005);
        if let Some(l) = o.limit_price {
            o.limit_price = Some(round_to(l as f64 * f, CENT));
        } else if let Some(s) = o.stop_price {
            o.stop_price = Some(round_to(s as f64 * f, CENT));
        } else {
            return false;
        }
        o.updated_at = self.tick(bt);
        o.event_id = self.next_event();
        update(&mut self.ord, &mut bt.logs.o, o);
        true
    }

    fn act_cancel_reject(&mut self, bt: &mut Batch) -> bool {
        let reserved = &bt.reserved;
        let hot_filled = (0..4).find_map(|_| {
            let id = *bt.hot.get(self.rng.random_range(0..bt.hot.len().max(1)))?;
            self.ord
                .get(id)
                .filter(|o| o.status == O_FILLED)
                .map(|o| o.id)
        });
        let Some(id) = hot_filled.or_else(|| {
            self.ord.random_key(&mut self.rng, usize::MAX, |o| {
                o.status == O_FILLED && !reserved.contains(&(T_ORDER, o.id))
            })
        }) else {
            return false;
        };
        let t = self.tick(bt);
        let o = self.ord.get(id).expect("exists").clone();
        let mut x = self.make_exec(&o, X_REJECTED, 0, t);
        x.id = self.ex.next_id();
        x.event_id = self.next_event();
        insert(&mut self.ex, &mut bt.logs.e, x);
        true
    }

    fn pick_old_exec(&mut self, bt: &Batch) -> Option<i64> {
        let reserved = &bt.reserved;
        self.ex.random_key(&mut self.rng, bt.exec_floor, |x| {
            !reserved.contains(&(T_EXEC, x.id))
        })
    }

    fn act_correct(&mut self, bt: &mut Batch) -> bool {
        let Some(id) = self.pick_old_exec(bt) else {
            return false;
        };
        let mut x = self.ex.get(id).expect("exists").clone();
        let Some(o) = self.ord.get(x.order_id).cloned() else {
            return false;
        };
        if x.exec_type == X_TRADE && self.rng.random_bool(0.6) {
            // price correction; the message quotes the previous price
            let p = x.last_price.expect("a trade has a price");
            x.text = Some(self.text(T_CORRECTION, &o, &x));
            let delta = if self.rng.random_bool(0.5) {
                CENT
            } else {
                -CENT
            };
            x.last_price = Some((p + delta).max(CENT));
        } else if x.exec_type == X_TRADE {
            let v = self.venue(o.currency);
            x.venue = Some(v);
            x.text = Some(
                format!(
                    "Correction: venue changed to {}, \"late report\"",
                    VENUES[v as usize]
                )
                .into(),
            );
        } else {
            let r = self.rng.random_range(10_000..100_000);
            x.text = Some(format!("Amended by broker ops, ref {r}").into());
        }
        x.event_id = self.next_event();
        update(&mut self.ex, &mut bt.logs.e, x);
        true
    }

    fn act_bust(&mut self, bt: &mut Batch) -> bool {
        let Some(id) = self.pick_old_exec(bt) else {
            return false;
        };
        delete(&mut self.ex, &mut bt.logs.e, id);
        true
    }
}
