//! The rows of the three tables and how each renders as the fields of a file record.

use super::fields::Fields;
use super::reference::{mix64, Ctx};
use super::vocab::*;

pub(super) const STRATEGY_BASE: i64 = 0;
pub(super) const ORDER_BASE: i64 = 10_000_000;
pub(super) const EXEC_BASE: i64 = 700_000_000;
/// Keys of the deliberate deletes of never-seen rows (one per batch, never allocated).
pub(super) const STRATEGY_PHANTOM: i64 = 2_000_000_000;
pub(super) const ORDER_PHANTOM: i64 = 9_000_000_000;
pub(super) const EXEC_PHANTOM: i64 = 90_000_000_000;

/// Scales of the numeric columns (quantities in 1e-4 units, prices in 1e-6, money in cents).
const QTY_SCALE: u32 = 4;
const PRICE_SCALE: u32 = 6;
const MONEY_SCALE: u32 = 2;
pub(super) const SHARE: i64 = 10_000;
pub(super) const CENT: i64 = 10_000;

pub(super) trait Row: Clone + PartialEq {
    fn key(&self) -> i64;
    fn event_id(&self) -> i64;
    fn render(&self, cx: &Ctx, out: &mut Fields);
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct Strategy {
    pub(super) id: i64,
    pub(super) name: Box<str>,
    pub(super) owner: u8,
    pub(super) broker: u8,
    pub(super) status: u8,
    pub(super) max_notional: Option<i64>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) event_id: i64,
}

impl Row for Strategy {
    fn key(&self) -> i64 {
        self.id
    }
    fn event_id(&self) -> i64 {
        self.event_id
    }
    fn render(&self, _cx: &Ctx, out: &mut Fields) {
        out.int(self.id);
        out.fmt(format_args!("STRAT-{:04}", self.id));
        out.str(&self.name);
        out.str(OWNERS[self.owner as usize]);
        out.str(BROKERS[self.broker as usize]);
        out.str(STRATEGY_STATUSES[self.status as usize]);
        out.opt_num(self.max_notional, MONEY_SCALE);
        out.ts(self.created_at);
        out.ts(self.updated_at);
        out.int(self.event_id);
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct Order {
    pub(super) id: i64,
    pub(super) strategy_id: i64,
    pub(super) client_order_id: u128,
    pub(super) isin: u16,
    pub(super) side: u8,
    pub(super) order_type: u8,
    pub(super) tif: u8,
    pub(super) quantity: i64,
    pub(super) limit_price: Option<i64>,
    pub(super) stop_price: Option<i64>,
    pub(super) currency: u8,
    pub(super) status: u8,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) event_id: i64,
    /// Filled quantity so far (simulation state, not a column; it only changes together with
    /// `status`/`updated_at`/`event_id`, so comparing it never hides or invents a change).
    pub(super) cum: i64,
}

impl Row for Order {
    fn key(&self) -> i64 {
        self.id
    }
    fn event_id(&self) -> i64 {
        self.event_id
    }
    fn render(&self, cx: &Ctx, out: &mut Fields) {
        let u = self.client_order_id;
        out.int(self.id);
        out.int(self.strategy_id);
        out.fmt(format_args!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (u >> 96) as u32,
            (u >> 80) as u16,
            (u >> 64) as u16,
            (u >> 48) as u16,
            u & 0xffff_ffff_ffff
        ));
        out.str(std::str::from_utf8(&cx.isins[self.isin as usize].code).expect("ascii isin"));
        out.str(SIDES[self.side as usize]);
        out.str(ORDER_TYPES[self.order_type as usize]);
        out.str(TIFS[self.tif as usize]);
        out.num(self.quantity, QTY_SCALE);
        out.opt_num(self.limit_price, PRICE_SCALE);
        out.opt_num(self.stop_price, PRICE_SCALE);
        out.str(CURRENCIES[self.currency as usize]);
        out.str(ORDER_STATUSES[self.status as usize]);
        out.ts(self.created_at);
        out.ts(self.updated_at);
        out.int(self.event_id);
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Exec {
    pub(super) id: i64,
    pub(super) order_id: i64,
    pub(super) exec_type: u8,
    pub(super) last_qty: i64,
    pub(super) last_price: Option<i64>,
    pub(super) cum_qty: i64,
    pub(super) leaves_qty: i64,
    pub(super) venue: Option<u8>,
    pub(super) text: Option<Box<str>>,
    pub(super) transact_time: i64,
    pub(super) event_id: i64,
}

impl Row for Exec {
    fn key(&self) -> i64 {
        self.id
    }
    fn event_id(&self) -> i64 {
        self.event_id
    }
    fn render(&self, cx: &Ctx, out: &mut Fields) {
        let h = mix64(cx.salt ^ self.id as u64);
        out.int(self.id);
        out.int(self.order_id);
        out.fmt(format_args!(
            "{:08x}.{:08x}.{:02}.01",
            (h >> 32) as u32,
            h as u32,
            self.id.rem_euclid(100)
        ));
        out.str(EXEC_TYPES[self.exec_type as usize]);
        out.num(self.last_qty, QTY_SCALE);
        out.opt_num(self.last_price, PRICE_SCALE);
        out.num(self.cum_qty, QTY_SCALE);
        out.num(self.leaves_qty, QTY_SCALE);
        match self.venue {
            Some(v) => out.str(VENUES[v as usize]),
            None => out.null(),
        }
        match &self.text {
            Some(t) => out.str(t),
            None => out.null(),
        }
        out.ts(self.transact_time);
        out.int(self.event_id);
    }
}
