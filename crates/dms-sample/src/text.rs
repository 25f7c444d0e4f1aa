//! The free-text broker messages of executions (commas, quotes, line breaks, non-ASCII).

use rand::Rng;

use super::rows::{Exec, Order, SHARE};
use super::sim::Sim;
use super::vocab::*;

/// Groups thousands: `12500` -> `12,500` (broker messages carry commas this way).
fn grouped(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn price_text(p: i64) -> String {
    let s = format!("{}.{:06}", p / 1_000_000, p % 1_000_000);
    let t = s.trim_end_matches('0');
    // keep at least two decimals
    let dot = t.find('.').expect("has a dot");
    if t.len() - dot < 3 {
        s[..dot + 3].to_string()
    } else {
        t.to_string()
    }
}

impl Sim {
    pub(super) fn text(&mut self, kind: u8, o: &Order, x: &Exec) -> Box<str> {
        let rot = self.text_rot[kind as usize];
        self.text_rot[kind as usize] += 1;
        let venue = x.venue.map_or("SMART", |v| VENUES[v as usize]);
        let qty = grouped(x.last_qty / SHARE);
        let leaves = grouped(x.leaves_qty / SHARE);
        let px = x.last_price.map(price_text).unwrap_or_else(|| "n/a".into());
        let bps = self.rng.random_range(1..25);
        let isin = std::str::from_utf8(&self.cx.isins[o.isin as usize].code)
            .expect("ascii")
            .to_string();
        let s = match kind {
            X_NEW => match rot % 3 {
                0 => "Order accepted by broker, routed to \"SMART\"".to_string(),
                1 => "Ordre accepté — en attente d'exécution".to_string(),
                _ => "受付済み\n注文は市場に送信されました".to_string(),
            },
            X_TRADE => match rot % 5 {
                0 => format!("Filled {qty} @ {px}, venue {venue}, liquidity=ADD"),
                1 => format!("Broker note: \"price improved by {bps} bps\", routed via {venue}"),
                2 => format!("Ordre exécuté — prix amélioré de {bps} pb"),
                3 => format!("約定: {qty} 株 @ {px}"),
                _ => format!("Ausführung bestätigt: Kurs {px}, Handelsplatz {venue}\nAbrechnung T+2"),
            },
            X_CANCELED => match rot % 5 {
                0 => format!(
                    "Cancel requested by strategy STRAT-{:04}\nreason: risk limit breached, notional > max",
                    o.strategy_id
                ),
                1 => format!(
                    "Canceled by user \"{}\", unfilled qty {leaves}",
                    OWNERS[(o.strategy_id as usize) % OWNERS.len()]
                ),
                2 => format!("Annulé à la demande du client — quantité restante {leaves}"),
                3 => format!("取消済み（残数量 {leaves}）"),
                _ => {
                    let mut s = format!(
                        "Cancel acknowledged by broker after pre-trade risk check. Details: isin={isin}, side={}, \
                         leaves={leaves}; note: \"client requested cancel\", desk=EMEA, session=REGULAR; \
                         commentaire: annulation confirmée — merci. 取消確認済み。 ",
                        SIDES[o.side as usize]
                    );
                    while s.chars().count() < 256 {
                        s.push_str("Ref ");
                        s.push_str(&isin);
                        s.push_str(", ");
                    }
                    s.chars().take(256).collect()
                }
            },
            X_EXPIRED => match rot % 3 {
                0 => format!("Order expired at end of session; unfilled qty={leaves}"),
                1 => format!("Expiré : fin de séance, ordre \"{}\"", TIFS[o.tif as usize]),
                _ => "期限切れ\nセッション終了".to_string(),
            },
            X_REJECTED => match rot % 3 {
                0 => "Rejected: \"Cancel request rejected\", order already filled".to_string(),
                1 => "Rejet de l'annulation — ordre déjà exécuté".to_string(),
                _ => "Too late to cancel\nbroker code 2015, \"order filled\"".to_string(),
            },
            _ => match rot % 2 {
                0 => format!("Trade corrected by broker, previous price {px}"),
                _ => format!("Prix corrigé — ancien prix {px}"),
            },
        };
        s.into_boxed_str()
    }
}
