//! What the resolve and probe stages found over a set of PoPs: the input of the rank stage and
//! of the probe metrics. Pure data; the pipeline fills it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::catalog::Pop;
use crate::probe::Probes;
use crate::resolve::{Answer, Endpoint};

/// The endpoints of each PoP and, when probing ran, what each address answered.
#[derive(Debug, Clone, Default)]
pub struct Survey {
    pub pops: Vec<(Pop, Vec<Endpoint>)>,
    pub answers: HashMap<String, Answer>,
    /// `None`: nothing was probed (ICMP unavailable or not asked for). Shared with the
    /// rankings made from it.
    pub probes: Option<Arc<Probes>>,
}

impl Survey {
    /// Every endpoint address, in catalogue order (an address two PoPs share comes twice).
    pub fn addresses(&self) -> Vec<IpAddr> {
        self.pops
            .iter()
            .flat_map(|(_, endpoints)| endpoints.iter().map(|e| e.ip))
            .collect()
    }
}
