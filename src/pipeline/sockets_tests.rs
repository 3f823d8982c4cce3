use super::*;
use crate::location::Site;
use crate::pipeline::notice::Notice;
use std::sync::Mutex;

#[derive(Default)]
struct Notices(Mutex<Vec<String>>);

impl Report for Notices {
    fn notice(&self, notice: Notice) {
        self.0.lock().unwrap().push(notice.to_string());
    }
}

fn location(local: bool) -> Location {
    Location {
        name: "here".to_owned(),
        location_id: String::new(),
        site: Site {
            latitude: 0.0,
            longitude: 0.0,
        },
        local,
        tunnels: Vec::new(),
        local_ts: Vec::new(),
        remote_ts: Vec::new(),
    }
}

fn local() -> Vec<Location> {
    vec![location(true)]
}

/// A device that no host has: opening fails the same way every round.
fn missing_device() -> ProbeSettings {
    ProbeSettings {
        interface: Some("popsel-none0".to_owned()),
        ..ProbeSettings::default()
    }
}

#[tokio::test]
async fn a_slot_that_could_not_open_tries_again_each_round_and_says_so_once() {
    let notices = Notices::default();
    let settings = missing_device();
    let mut slot = ProberSlot::open(&local(), false, &settings, &notices);
    assert_eq!(slot.socket_up(), Some(false));
    for _ in 0..3 {
        assert!(slot.current(&settings, &notices).is_none());
    }
    let said = notices.0.lock().unwrap().clone();
    assert_eq!(said.len(), 1, "the same failure said once: {said:?}");
    assert!(said[0].contains("popsel-none0"), "{said:?}");
}

#[tokio::test]
async fn no_probe_or_no_local_location_wants_no_socket() {
    let notices = Notices::default();
    let settings = missing_device();
    let mut slot = ProberSlot::open(&local(), true, &settings, &notices);
    assert_eq!(slot.socket_up(), None);
    assert!(slot.current(&settings, &notices).is_none());
    let remote = vec![location(false)];
    let slot = ProberSlot::open(&remote, false, &settings, &notices);
    assert_eq!(slot.socket_up(), None);
    assert!(notices.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_slot_given_no_engine_never_opens_one() {
    let notices = Notices::default();
    let mut slot = ProberSlot::given(None);
    assert_eq!(slot.socket_up(), None);
    // Even with settings that a slot of its own would try (and fail) to open.
    assert!(slot.current(&missing_device(), &notices).is_none());
    assert!(notices.0.lock().unwrap().is_empty());
}
