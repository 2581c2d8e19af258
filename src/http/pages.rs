//! The player page, the admin dashboard and their assets: files in
//! `static/`, embedded in the binary (nothing to install, no CDN).

use http::{header, Response};
use http_body_util::{BodyExt, Full};

use super::Body;

const PLAYER: &str = include_str!("../../static/player.html");
/// The dashboard's shell: no data until the token is given.
pub const ADMIN: &str = include_str!("../../static/admin.html");

/// (name, content type, content) of everything under `/static/`.
const ASSETS: [(&str, &str, &str); 3] = [
    ("style.css", "text/css; charset=utf-8", include_str!("../../static/style.css")),
    ("player.js", "text/javascript; charset=utf-8", include_str!("../../static/player.js")),
    ("admin.js", "text/javascript; charset=utf-8", include_str!("../../static/admin.js")),
];

/// The player page with the station's name.
pub fn player(station: &str) -> String {
    let name: String = station.chars().filter(|c| !"<>&\"'".contains(*c)).collect();
    PLAYER.replace("{{station}}", &name)
}

pub fn asset(name: &str) -> Option<Response<Body>> {
    let (_, kind, body) = ASSETS.iter().find(|(n, _, _)| *n == name)?;
    Some(
        Response::builder()
            .header(header::CONTENT_TYPE, *kind)
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Full::new(bytes::Bytes::from_static(body.as_bytes())).boxed())
            .expect("valid response"),
    )
}
