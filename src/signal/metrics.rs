//! The LED's Prometheus metrics: which state it shows and which backend drives it.

use super::{DeviceState, LedHandle};
use crate::health::metrics::Metrics;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

type Labels = Vec<(&'static str, &'static str)>;

/// Registers `bbedge_led_state{state=…}` (1 for the state shown, 0 for the others) and
/// `bbedge_led_backend{backend=…}` (1 for the backend in use) and `bbedge_led_degraded`,
/// refreshed on each scrape.
pub fn register(metrics: &mut Metrics, led: LedHandle) {
    let state = Family::<Labels, Gauge>::default();
    let backend = Family::<Labels, Gauge>::default();
    let degraded = Gauge::<i64>::default();
    let reg = metrics.registry();
    reg.register(
        "led_state",
        "1 for the device state the status LED shows",
        state.clone(),
    );
    reg.register(
        "led_backend",
        "1 for the backend driving the status LED (sysfs, gpio or sim)",
        backend.clone(),
    );
    reg.register(
        "led_degraded",
        "1 when the configured LED hardware failed and the LED runs simulated",
        degraded.clone(),
    );
    metrics.on_scrape(Box::new(move || {
        let view = led.view();
        for s in DeviceState::ALL {
            state
                .get_or_create(&vec![("state", s.as_str())])
                .set(i64::from(s == view.state));
        }
        for b in ["sysfs", "gpio", "sim"] {
            backend
                .get_or_create(&vec![("backend", b)])
                .set(i64::from(b == view.backend));
        }
        degraded.set(i64::from(view.degraded.is_some()));
    }));
}
