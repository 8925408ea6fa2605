//! Serving `<prefix>.dev.clock`: every service started with `--dev-clock` subscribes (plainly,
//! not in a queue group), so one request moves the clocks of all of them; the caller takes the
//! first reply.

use bus::{Bus, Headers, Subscription};
use protocol::{DevClockReply, DevClockRequest, Format};
use tokio::sync::watch;

use crate::Clock;

/// Answers `{"advance_ms": N}` / `{"set_ms": T}` with `{"now_ms"}` until `stopped` turns true.
pub async fn serve_dev_clock(
    mut requests: Subscription,
    bus: Bus,
    clock: Clock,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let request = tokio::select! {
            _ = wait_for_stop(&mut stopped) => return,
            request = requests.next() => match request {
                Some(request) => request,
                None => return,
            },
        };
        let moved = match DevClockRequest::decode(&request.payload, Format::Json) {
            Ok(DevClockRequest::AdvanceMs(ms)) => clock
                .advance(ms)
                .map_err(|_| "the clock is not the development clock".to_owned()),
            Ok(DevClockRequest::SetMs(ms)) => clock
                .set(domain::Timestamp::from_millis(ms))
                .map_err(|_| "the clock is not the development clock".to_owned()),
            Err(invalid) => Err(invalid.message),
        };
        let payload = match moved {
            Ok(now) => DevClockReply {
                now_ms: now.millis(),
            }
            .encode(Format::Json)
            .unwrap_or_default(),
            Err(message) => serde_json::to_vec(
                &serde_json::json!({"error": {"code": "invalid_command", "message": message}}),
            )
            .unwrap_or_default(),
        };
        let headers = Headers::new().with("Content-Type", Format::Json.content_type());
        let _ = bus.respond(&request, headers, payload).await;
    }
}

async fn wait_for_stop(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await.map(|_| ());
}
