//! Vocabulary: the enumerations (stored as `u8` indexes into their text) and the word lists
//! the rows draw from.

pub(super) const STRATEGY_STATUSES: [&str; 3] = ["ACTIVE", "PAUSED", "RETIRED"];
pub(super) const S_ACTIVE: u8 = 0;
pub(super) const S_PAUSED: u8 = 1;
pub(super) const S_RETIRED: u8 = 2;

pub(super) const SIDES: [&str; 2] = ["BUY", "SELL"];
pub(super) const BUY: u8 = 0;

pub(super) const ORDER_TYPES: [&str; 4] = ["MARKET", "LIMIT", "STOP", "STOP_LIMIT"];
pub(super) const MARKET: u8 = 0;
pub(super) const LIMIT: u8 = 1;
pub(super) const STOP: u8 = 2;
pub(super) const STOP_LIMIT: u8 = 3;

pub(super) const TIFS: [&str; 4] = ["DAY", "GTC", "IOC", "FOK"];
pub(super) const DAY: u8 = 0;
pub(super) const GTC: u8 = 1;
pub(super) const IOC: u8 = 2;
pub(super) const FOK: u8 = 3;

pub(super) const CURRENCIES: [&str; 3] = ["USD", "EUR", "GBP"];
pub(super) const USD: u8 = 0;
pub(super) const EUR: u8 = 1;
pub(super) const GBP: u8 = 2;

pub(super) const ORDER_STATUSES: [&str; 6] = [
    "NEW",
    "PARTIALLY_FILLED",
    "FILLED",
    "CANCELED",
    "REJECTED",
    "EXPIRED",
];
pub(super) const O_NEW: u8 = 0;
pub(super) const O_PARTIAL: u8 = 1;
pub(super) const O_FILLED: u8 = 2;
pub(super) const O_CANCELED: u8 = 3;
pub(super) const O_REJECTED: u8 = 4;
pub(super) const O_EXPIRED: u8 = 5;

pub(super) const EXEC_TYPES: [&str; 5] = ["NEW", "TRADE", "CANCELED", "REJECTED", "EXPIRED"];
pub(super) const X_NEW: u8 = 0;
pub(super) const X_TRADE: u8 = 1;
pub(super) const X_CANCELED: u8 = 2;
pub(super) const X_REJECTED: u8 = 3;
pub(super) const X_EXPIRED: u8 = 4;
/// Kind of text for an execution correction (not an exec type).
pub(super) const T_CORRECTION: u8 = 5;

pub(super) const BROKERS: [&str; 5] = ["IBKR", "ALPACA", "SAXO", "LMAX", "TRADESTATION"];

pub(super) const OWNERS: [&str; 12] = [
    "a.okafor",
    "b.lindqvist",
    "c.moreau",
    "d.nakamura",
    "e.rossi",
    "f.dupont",
    "g.schmidt",
    "h.kowalski",
    "i.garcia",
    "j.chen",
    "k.müller",
    "l.françois",
];

pub(super) const STYLES: [&str; 11] = [
    "Momentum",
    "Mean Reversion",
    "Pairs",
    "Stat Arb",
    "Trend Following",
    "Breakout",
    "VWAP Tracker",
    "Market Making",
    "Carry",
    "Event Driven",
    "Low Vol",
];
pub(super) const UNIVERSES: [&str; 10] = [
    "US Large Cap",
    "US Tech",
    "EU Banks",
    "FTSE 100",
    "DAX",
    "CAC 40",
    "Euro Stoxx 50",
    "Nasdaq 100",
    "S&P 500 Energy",
    "UK Mid Cap",
];
pub(super) const HORIZONS: [&str; 6] = ["1m", "5m", "15m", "1h", "daily", "intraday"];

pub(super) const VENUES: [&str; 13] = [
    "XNYS", "XNAS", "ARCX", "BATS", "IEXG", "EDGX", "XLON", "CHIX", "TRQX", "AQXE", "XETR", "XPAR",
    "XAMS",
];

pub(super) fn venues_for(currency: u8) -> &'static [u8] {
    match currency {
        USD => &[0, 1, 2, 3, 4, 5],
        GBP => &[6, 7, 8, 9],
        _ => &[10, 11, 12, 7, 8],
    }
}
