//! The simulation state, and the drawing of new strategies, orders and executions.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::reference::{Ctx, ISIN_POOL};
use super::rows::*;
use super::state::Table;
use super::vocab::*;

pub(super) struct Sim {
    pub(super) rng: StdRng,
    pub(super) cx: Ctx,
    pub(super) st: Table<Strategy>,
    pub(super) ord: Table<Order>,
    pub(super) ex: Table<Exec>,
    /// Order-flow weight of each strategy (index = strategy_id - 1).
    pub(super) weights: Vec<f64>,
    /// Last event_id assigned.
    pub(super) event: i64,
    /// Orders that were open when listed (checked lazily).
    pub(super) open: Vec<i64>,
    /// Rotation through the message templates, per kind.
    pub(super) text_rot: [usize; 6],
}

pub(super) fn weighted_pick(
    rng: &mut StdRng,
    weights: &[f64],
    ok: impl Fn(usize) -> bool,
) -> Option<usize> {
    let total: f64 = (0..weights.len())
        .filter(|&i| ok(i))
        .map(|i| weights[i])
        .sum();
    if total <= 0.0 {
        return None;
    }
    let mut r = rng.random::<f64>() * total;
    let mut last = None;
    for (i, &w) in weights.iter().enumerate() {
        if !ok(i) || w <= 0.0 {
            continue;
        }
        last = Some(i);
        if r < w {
            return Some(i);
        }
        r -= w;
    }
    last
}

pub(super) fn round_to(v: f64, tick: i64) -> i64 {
    (((v / tick as f64).round() as i64) * tick).max(tick)
}

impl Sim {
    pub(super) fn new(seed: u64) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let cx = Ctx::new(&mut rng);
        Sim {
            rng,
            cx,
            st: Table::new(STRATEGY_BASE),
            ord: Table::new(ORDER_BASE),
            ex: Table::new(EXEC_BASE),
            weights: Vec::new(),
            event: 0,
            open: Vec::new(),
            text_rot: [0; 6],
        }
    }

    pub(super) fn next_event(&mut self) -> i64 {
        self.event += 1;
        self.event
    }

    pub(super) fn strategy_name(&mut self) -> Box<str> {
        let style = STYLES[self.rng.random_range(0..STYLES.len())];
        let uni = UNIVERSES[self.rng.random_range(0..UNIVERSES.len())];
        let hz = HORIZONS[self.rng.random_range(0..HORIZONS.len())];
        let r: f64 = self.rng.random();
        let name = if r < 0.6 {
            format!("{style} {uni} {hz}")
        } else if r < 0.75 {
            format!("{style}, {uni} ({hz})")
        } else if r < 0.85 {
            format!("{style} \"{uni}\" v{}", self.rng.random_range(2..9))
        } else {
            format!("Stratégie {style} — {uni}")
        };
        name.into_boxed_str()
    }

    pub(super) fn new_strategy(&mut self, id: i64, created: i64) -> Strategy {
        let max_notional = if id % 5 == 3 || self.rng.random_bool(0.1) {
            None
        } else {
            Some(self.rng.random_range(50..5_000i64) * 1_000 * 100)
        };
        Strategy {
            id,
            name: self.strategy_name(),
            owner: self.rng.random_range(0..OWNERS.len()) as u8,
            broker: self.rng.random_range(0..BROKERS.len()) as u8,
            status: S_ACTIVE,
            max_notional,
            created_at: created,
            updated_at: created,
            event_id: 0,
        }
    }

    pub(super) fn new_order(&mut self, id: i64, strategy_id: i64, t: i64) -> Order {
        let rng = &mut self.rng;
        let u: f64 = rng.random();
        let isin = ((u * u) * ISIN_POOL as f64) as u16;
        let info = &self.cx.isins[isin as usize];
        let side = if rng.random_bool(0.52) { BUY } else { 1 };
        let r: f64 = rng.random();
        let order_type = if r < 0.35 {
            MARKET
        } else if r < 0.83 {
            LIMIT
        } else if r < 0.90 {
            STOP
        } else {
            STOP_LIMIT
        };
        let r: f64 = rng.random();
        let tif = match order_type {
            MARKET if r < 0.7 => DAY,
            MARKET if r < 0.95 => IOC,
            MARKET => FOK,
            LIMIT if r < 0.5 => DAY,
            LIMIT if r < 0.85 => GTC,
            LIMIT if r < 0.95 => IOC,
            LIMIT => FOK,
            _ if r < 0.6 => DAY,
            _ => GTC,
        };
        let quantity = if rng.random_bool(0.07) {
            rng.random_range(SHARE..50 * SHARE)
        } else {
            const LOTS: [i64; 23] = [
                1, 2, 5, 10, 15, 20, 25, 50, 75, 100, 150, 200, 250, 300, 400, 500, 750, 1000,
                1500, 2000, 2500, 5000, 10000,
            ];
            let u: f64 = rng.random();
            let i = (((u * 0.8 + 0.2 * u * u) * LOTS.len() as f64) as usize).min(LOTS.len() - 1);
            LOTS[i] * SHARE
        };
        let market = info.price as f64 * (1.0 + rng.random_range(-0.02..0.02));
        let dir = if side == BUY { 1.0 } else { -1.0 };
        let stop = matches!(order_type, STOP | STOP_LIMIT)
            .then(|| round_to(market * (1.0 + dir * rng.random_range(0.005..0.03)), CENT));
        let limit_price = match order_type {
            LIMIT => Some(round_to(
                market * (1.0 - dir * rng.random_range(-0.002..0.008)),
                CENT,
            )),
            STOP_LIMIT => Some(round_to(
                stop.expect("stop set") as f64 * (1.0 + dir * rng.random_range(0.001..0.005)),
                CENT,
            )),
            _ => None,
        };
        let mut coid: u128 = rng.random();
        coid = (coid & !(0xf << 76)) | (0x4 << 76);
        coid = (coid & !(0x3 << 62)) | (0x2 << 62);
        Order {
            id,
            strategy_id,
            client_order_id: coid,
            isin,
            side,
            order_type,
            tif,
            quantity,
            limit_price,
            stop_price: stop,
            currency: info.currency,
            status: O_NEW,
            created_at: t,
            updated_at: t,
            event_id: 0,
            cum: 0,
        }
    }

    fn trade_price(&mut self, o: &Order) -> i64 {
        let base = self.cx.isins[o.isin as usize].price as f64;
        let mut px = match (o.order_type, o.stop_price) {
            (STOP, Some(s)) => s as f64 * (1.0 + self.rng.random_range(-0.002..0.002)),
            _ => base * (1.0 + self.rng.random_range(-0.006..0.006)),
        };
        if let Some(l) = o.limit_price {
            let l = l as f64;
            px = if o.side == BUY { px.min(l) } else { px.max(l) };
        }
        let r: f64 = self.rng.random();
        let tick = if r < 0.96 {
            CENT
        } else if r < 0.99 {
            100
        } else {
            1
        };
        round_to(px, tick)
    }

    pub(super) fn venue(&mut self, currency: u8) -> u8 {
        let v = venues_for(currency);
        v[self.rng.random_range(0..v.len())]
    }

    /// An execution of `o` (whose `cum` is the filled quantity before it).
    pub(super) fn make_exec(&mut self, o: &Order, exec_type: u8, last_qty: i64, time: i64) -> Exec {
        let cum = o.cum + last_qty;
        let (last_price, venue) = if exec_type == X_TRADE {
            let px = self.trade_price(o);
            let v = (!self.rng.random_bool(0.04)).then(|| self.venue(o.currency));
            (Some(px), v)
        } else {
            (None, None)
        };
        let leaves = match exec_type {
            X_CANCELED | X_EXPIRED => 0,
            _ => o.quantity - cum,
        };
        let mut x = Exec {
            id: 0,
            order_id: o.id,
            exec_type,
            last_qty,
            last_price,
            cum_qty: cum,
            leaves_qty: leaves,
            venue,
            text: None,
            transact_time: time,
            event_id: 0,
        };
        let p = match exec_type {
            X_NEW => 0.01,
            X_TRADE => 0.03,
            X_CANCELED => 0.5,
            X_EXPIRED => 0.6,
            _ => 1.0,
        };
        if self.rng.random_bool(p) {
            x.text = Some(self.text(exec_type, o, &x));
        }
        x
    }
}
