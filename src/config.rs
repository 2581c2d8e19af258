//! Configuration: `config/nonstop.toml` parsed into typed, validated
//! settings before any thread is spawned. Every error names the file and the
//! key (`stream.bitrate_kbps`), so a typo never surfaces later as a strange
//! failure deep in the pipeline.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ordering::distance::Weights;
use crate::ordering::plugin::Limits;
use crate::ordering::rules::Rules;
use crate::units::SampleRate;

/// Bitrates LAME can produce as MPEG-1 Layer III CBR.
pub const BITRATES_KBPS: [u32; 13] = [32, 40, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not a `#[source]`: the message already says it, once.
    #[error("cannot read the configuration file {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {key} = {value}: {reason}")]
    Invalid { path: PathBuf, key: &'static str, value: String, reason: String },
}

/// The whole configuration file. Unknown keys are rejected.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub paths: PathsConfig,
    pub library: LibraryConfig,
    pub stream: StreamConfig,
    pub queues: QueuesConfig,
    pub mixer: MixerConfig,
    pub ordering: OrderingConfig,
    pub outputs: OutputsConfig,
    pub requests: RequestsConfig,
    /// Further mounts: the same mix encoded again (`[[mounts]]`).
    pub mounts: Vec<MountConfig>,
    /// Where this configuration came from, for error messages. Not a key.
    #[serde(skip)]
    pub source: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. Default: `0.0.0.0:8000`.
    pub listen: SocketAddr,
    /// Station name sent as `icy-name` and shown on /status. Default: `nonstop`.
    pub station_name: String,
    /// Concurrent listeners allowed; more get 503. Default: `1000`.
    pub max_listeners: usize,
    /// Connections the kernel queues before they are accepted (a flash
    /// crowd waits instead of being refused). Default: `4096`.
    pub accept_backlog: u32,
    /// The bearer token of the admin endpoints (`/admin/...`); unset, they
    /// are disabled. The environment variable `NONSTOP_ADMIN_TOKEN`
    /// overrides it. Default: unset.
    pub admin_token: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (for the
    /// requests' per-listener cooldown). Default: none.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "0.0.0.0:8000".parse().expect("valid literal"),
            station_name: "nonstop".into(),
            max_listeners: 1000,
            accept_backlog: 4096,
            admin_token: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// A further mount (`[[mounts]]`): the same mix at another bitrate, on its
/// own path, encoder thread and queues, in step with the main stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountConfig {
    /// Its path, e.g. `/low.mp3`.
    pub path: String,
    /// Its constant bitrate, kbps (an MPEG-1 Layer III rate).
    pub bitrate_kbps: u32,
}

/// Song requests (`[requests]`): listeners pick a track from the library
/// and it plays within the next few tracks, obeying the host rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestsConfig {
    /// Whether `POST /api/requests` is open to listeners (admins can always
    /// queue requests). Default: `false`.
    pub enabled: bool,
    /// Seconds a listener (by address) waits between requests. Default: `300`.
    pub cooldown_s: f64,
    /// Requests waiting at once; more are refused. Default: `5`.
    pub queue_limit: usize,
}

impl Default for RequestsConfig {
    fn default() -> Self {
        RequestsConfig { enabled: false, cooldown_s: 300.0, queue_limit: 5 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathsConfig {
    /// Runtime data: the catalogue database. Default: `data`.
    pub data_dir: PathBuf,
    /// The music library. Default: `<data_dir>/library`.
    pub library_dir: Option<PathBuf>,
}

impl Default for PathsConfig {
    fn default() -> Self {
        PathsConfig { data_dir: "data".into(), library_dir: None }
    }
}

impl PathsConfig {
    pub fn library(&self) -> PathBuf {
        self.library_dir.clone().unwrap_or_else(|| self.data_dir.join("library"))
    }
    pub fn catalog_db(&self) -> PathBuf {
        self.data_dir.join("catalog.sqlite")
    }
    /// The demo library's folder (made only while the library holds no audio).
    pub fn demo(&self) -> PathBuf {
        self.data_dir.join("demo")
    }
}

/// `[outputs]`: where else the station's stream goes.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OutputsConfig {
    /// `[[outputs.icecast]]`: Icecast servers the stream is pushed to, as
    /// their source.
    pub icecast: Vec<IcecastOutput>,
}

/// One Icecast server and mount to push the stream to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcecastOutput {
    /// `http://host:port/mount`, e.g. `http://127.0.0.1:8100/live.mp3`.
    pub url: String,
    /// Source user. Default: `source`.
    #[serde(default = "default_source_user")]
    pub user: String,
    pub password: String,
    /// Shown by Icecast and directories; default: `server.station_name`.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub genre: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// List the stream in public directories. Default: `false`.
    #[serde(default)]
    pub public: bool,
}

fn default_source_user() -> String {
    "source".into()
}

impl IcecastOutput {
    /// Host and port, and the mount (the path), from `url`.
    pub fn target(&self) -> Result<(String, String), String> {
        let uri: http::Uri = self.url.parse().map_err(|e| format!("{e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err("must be an http:// URL".into());
        }
        let host = uri.host().ok_or("has no host")?;
        let mount = uri.path();
        if mount.len() < 2 {
            return Err("has no mount (e.g. http://host:8000/live.mp3)".into());
        }
        Ok((format!("{host}:{}", uri.port_u16().unwrap_or(8000)), mount.to_string()))
    }
}

/// `[library]`: how the library is indexed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LibraryConfig {
    /// Files longer than this are not analysed (failed, with the reason). Default: `60.0`.
    pub max_track_minutes: f64,
    /// The library is rescanned this often even without file-system events
    /// (network mounts, a watcher that failed), minutes. Default: `5.0`.
    pub rescan_minutes: f64,
    /// Tracks shorter than this are clips (jingles, samples, intros on
    /// their own): analysed and listed, never scheduled as songs, seconds.
    /// Default: `45.0`.
    pub min_track_s: f64,
}

impl Default for LibraryConfig {
    fn default() -> Self {
        LibraryConfig { max_track_minutes: 60.0, rescan_minutes: 5.0, min_track_s: 45.0 }
    }
}

impl LibraryConfig {
    pub fn limits(&self) -> crate::analysis::AnalysisLimits {
        crate::analysis::AnalysisLimits { max_seconds: self.max_track_minutes * 60.0 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// CBR bitrate in kbps. Default: `128`.
    pub bitrate_kbps: u32,
    /// Station sample rate in Hz (32000, 44100 or 48000). Default: `44100`.
    pub sample_rate: u32,
    /// LAME algorithm quality, 0 (best, slowest) to 9. Default: `3` (LAME's own CLI default).
    pub lame_quality: u8,
    /// Audio bytes between ICY metadata blocks. Default: `16000`.
    pub icy_metaint: usize,
    /// Seconds of audio a new listener gets at once on connect. Default: `3.0`.
    pub burst_s: f64,
    /// A listener further behind live than this is disconnected. Default: `10.0`.
    pub max_lag_s: f64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            bitrate_kbps: 128,
            sample_rate: 44_100,
            lame_quality: 3,
            icy_metaint: 16_000,
            burst_s: 3.0,
            max_lag_s: 10.0,
        }
    }
}

impl StreamConfig {
    pub fn rate(&self) -> SampleRate {
        SampleRate(self.sample_rate)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueuesConfig {
    /// Capacity of the mixed-PCM queue between mixer and encoder, seconds. Default: `10.0`.
    pub pcm_s: f64,
    /// Capacity of the MP3-frame queue between encoder and broadcaster, seconds. Default: `5.0`.
    pub frames_s: f64,
}

impl Default for QueuesConfig {
    fn default() -> Self {
        QueuesConfig { pcm_s: 10.0, frames_s: 5.0 }
    }
}

/// `[ordering]`: the active plugin, the host rules and the distance weights.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrderingConfig {
    /// Active plugin: `<plugins_dir>/<plugin>.rhai`. Default: `tour`.
    pub plugin: String,
    /// Folder of plugin scripts, watched for changes. Default: `plugins`.
    pub plugins_dir: PathBuf,
    /// Seed of the plugins' `random()`; unset: different every start.
    pub seed: Option<u64>,
    /// A track does not play again within this many tracks. Default: `10`.
    pub no_repeat_tracks: usize,
    /// ... nor within this many minutes. Default: `60`.
    pub no_repeat_minutes: f64,
    /// No artist within this many tracks of itself. Default: `2`.
    pub artist_separation: usize,
    pub weights: Weights,
    pub limits: Limits,
}

impl Default for OrderingConfig {
    fn default() -> Self {
        let rules = Rules::default();
        OrderingConfig {
            plugin: "tour".into(),
            plugins_dir: "plugins".into(),
            seed: None,
            no_repeat_tracks: rules.no_repeat_tracks,
            no_repeat_minutes: rules.no_repeat_minutes,
            artist_separation: rules.artist_separation,
            weights: Weights::default(),
            limits: Limits::default(),
        }
    }
}

impl OrderingConfig {
    /// The distance weights, with the tempo limit from the mixer.
    pub fn weights(&self, mixer: &MixerConfig) -> Weights {
        Weights { tempo_limit: mixer.max_tempo_change, ..self.weights }
    }

    pub fn rules(&self) -> Rules {
        Rules {
            no_repeat_tracks: self.no_repeat_tracks,
            no_repeat_minutes: self.no_repeat_minutes,
            artist_separation: self.artist_separation,
        }
    }

    /// The active plugin's file.
    pub fn plugin_path(&self) -> PathBuf {
        self.plugins_dir.join(format!("{}.rhai", self.plugin))
    }
}

impl Config {
    /// Checks that `ordering.plugin` names a plugin there is: a file in the
    /// plugins folder, or a shipped plugin when the folder is still to be
    /// created (it is, with the shipped plugins, at start).
    pub fn check_plugin(&self) -> Result<(), ConfigError> {
        let o = &self.ordering;
        let shipped: Vec<&str> =
            crate::ordering::SHIPPED_PLUGINS.iter().filter_map(|(f, _)| f.strip_suffix(".rhai")).collect();
        if o.plugin_path().is_file() || (!o.plugins_dir.exists() && shipped.contains(&o.plugin.as_str())) {
            return Ok(());
        }
        let mut there: Vec<String> = std::fs::read_dir(&o.plugins_dir)
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".rhai").map(str::to_string)).collect()
            })
            .unwrap_or_else(|_| shipped.iter().map(|s| s.to_string()).collect());
        there.sort();
        Err(ConfigError::Invalid {
            path: self.source.clone(),
            key: "ordering.plugin",
            value: format!("{:?}", o.plugin),
            reason: format!("there is no {} (plugins there: {})", o.plugin_path().display(), there.join(", ")),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MixerConfig {
    /// Length of the fallback crossfade (beats unreliable or tempos too far
    /// apart), seconds. Default: `6.0`.
    pub crossfade_s: f64,
    /// Bars both tracks play together in a beatmatched transition. Default: `16`.
    pub overlap_bars: u32,
    /// Largest tempo change the incoming track is stretched by (half and
    /// double tempo considered), as a fraction. Default: `0.08`.
    pub max_tempo_change: f64,
    /// Beat confidence below which a pair is crossfaded, 0..1. Default: `0.1`.
    pub min_beat_confidence: f64,
    /// Share of each track's overlap beats that must keep a steady tempo
    /// to beatmatch, 0..1 (0: beatmatch a wandering pulse too). Default: `0.5`.
    pub min_steady_share: f64,
    /// Bars over which the incoming track glides to its own tempo after the overlap. Default: `8`.
    pub glide_bars: u32,
    /// Loudness every track is brought to, LUFS. Default: `-14.0`.
    pub target_lufs: f64,
    /// Largest loudness correction, dB. Default: `12.0`.
    pub max_gain_db: f64,
    /// Output ceiling, dBTP. Default: `-1.0`.
    pub ceiling_dbtp: f64,
}

impl Default for MixerConfig {
    fn default() -> Self {
        let t = crate::transition::TransitionSettings::default();
        MixerConfig {
            crossfade_s: t.crossfade_s,
            overlap_bars: t.overlap_bars,
            max_tempo_change: t.max_tempo_change,
            min_beat_confidence: t.min_beat_confidence,
            min_steady_share: t.min_steady_share,
            glide_bars: t.glide_bars,
            target_lufs: t.target_lufs,
            max_gain_db: t.max_gain_db,
            ceiling_dbtp: t.ceiling_db,
        }
    }
}

impl MixerConfig {
    pub fn transition(&self) -> crate::transition::TransitionSettings {
        crate::transition::TransitionSettings {
            overlap_bars: self.overlap_bars,
            max_tempo_change: self.max_tempo_change,
            min_beat_confidence: self.min_beat_confidence,
            min_steady_share: self.min_steady_share,
            glide_bars: self.glide_bars,
            crossfade_s: self.crossfade_s,
            target_lufs: self.target_lufs,
            max_gain_db: self.max_gain_db,
            ceiling_db: self.ceiling_dbtp,
        }
    }
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError::Read { path: path.to_owned(), error })?;
        Config::parse(&text, path)
    }

    /// Parses and validates configuration text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            // toml's message points at the line with a snippet: kept as is.
            message: e.to_string().trim_end().to_string(),
        })?;
        config.source = path.to_owned();
        config.validate()?;
        Ok(config)
    }

    /// Checks every value that the types alone do not constrain.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.stream;
        let check = |ok: bool, key: &'static str, value: String, reason: &str| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    path: self.source.clone(),
                    key,
                    value,
                    reason: reason.to_string(),
                })
            }
        };
        check(
            BITRATES_KBPS.contains(&s.bitrate_kbps),
            "stream.bitrate_kbps",
            s.bitrate_kbps.to_string(),
            "must be an MPEG-1 Layer III bitrate (32, 40, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)",
        )?;
        check(
            [32_000, 44_100, 48_000].contains(&s.sample_rate),
            "stream.sample_rate",
            s.sample_rate.to_string(),
            "must be 32000, 44100 or 48000",
        )?;
        check(s.lame_quality <= 9, "stream.lame_quality", s.lame_quality.to_string(), "must be 0..=9")?;
        check(
            (256..=1_048_576).contains(&s.icy_metaint),
            "stream.icy_metaint",
            s.icy_metaint.to_string(),
            "must be between 256 and 1048576 bytes",
        )?;
        check(
            s.burst_s.is_finite() && (0.0..=60.0).contains(&s.burst_s),
            "stream.burst_s",
            s.burst_s.to_string(),
            "must be between 0 and 60 seconds",
        )?;
        check(
            s.max_lag_s.is_finite() && s.max_lag_s > s.burst_s + 0.5 && s.max_lag_s <= 600.0,
            "stream.max_lag_s",
            s.max_lag_s.to_string(),
            "must exceed stream.burst_s by at least 0.5 s (a new listener starts burst_s behind) and be at most 600",
        )?;
        check(
            (1..=1_048_576).contains(&self.server.accept_backlog),
            "server.accept_backlog",
            self.server.accept_backlog.to_string(),
            "must be between 1 and 1048576",
        )?;
        check(
            self.server.max_listeners >= 1,
            "server.max_listeners",
            self.server.max_listeners.to_string(),
            "must be at least 1",
        )?;
        let mut paths = vec!["/stream.mp3".to_string(), "/stream".to_string()];
        for m in &self.mounts {
            check(
                m.path.starts_with('/') && m.path.len() > 1 && m.path.chars().all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c)),
                "mounts.path",
                format!("{:?}", m.path),
                "must start with / and hold only letters, digits, '/', '.', '_' and '-'",
            )?;
            check(!paths.contains(&m.path), "mounts.path", format!("{:?}", m.path), "is used twice (or is the main stream's)")?;
            check(
                BITRATES_KBPS.contains(&m.bitrate_kbps),
                "mounts.bitrate_kbps",
                m.bitrate_kbps.to_string(),
                "must be an MPEG-1 Layer III bitrate (32, 40, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)",
            )?;
            paths.push(m.path.clone());
        }
        let r = &self.requests;
        check(
            r.cooldown_s.is_finite() && (0.0..=86_400.0).contains(&r.cooldown_s),
            "requests.cooldown_s",
            r.cooldown_s.to_string(),
            "must be between 0 and 86400 seconds",
        )?;
        check(
            (1..=crate::ordering::UPCOMING).contains(&r.queue_limit),
            "requests.queue_limit",
            r.queue_limit.to_string(),
            &format!("must be between 1 and {} (the plan's length)", crate::ordering::UPCOMING),
        )?;
        check(
            self.queues.pcm_s.is_finite() && (0.5..=600.0).contains(&self.queues.pcm_s),
            "queues.pcm_s",
            self.queues.pcm_s.to_string(),
            "must be between 0.5 and 600 seconds",
        )?;
        check(
            self.queues.frames_s.is_finite() && (0.5..=600.0).contains(&self.queues.frames_s),
            "queues.frames_s",
            self.queues.frames_s.to_string(),
            "must be between 0.5 and 600 seconds",
        )?;
        check(
            self.mixer.crossfade_s.is_finite() && (0.0..=60.0).contains(&self.mixer.crossfade_s),
            "mixer.crossfade_s",
            self.mixer.crossfade_s.to_string(),
            "must be between 0 and 60 seconds",
        )?;
        let m = &self.mixer;
        check((4..=64).contains(&m.overlap_bars), "mixer.overlap_bars", m.overlap_bars.to_string(), "must be 4..=64")?;
        check(
            (0.0..=0.25).contains(&m.max_tempo_change),
            "mixer.max_tempo_change",
            m.max_tempo_change.to_string(),
            "must be between 0 and 0.25",
        )?;
        check(
            (0.0..=1.0).contains(&m.min_beat_confidence),
            "mixer.min_beat_confidence",
            m.min_beat_confidence.to_string(),
            "must be between 0 and 1",
        )?;
        check(
            (0.0..=1.0).contains(&m.min_steady_share),
            "mixer.min_steady_share",
            m.min_steady_share.to_string(),
            "must be between 0 and 1",
        )?;
        check(m.glide_bars <= 64, "mixer.glide_bars", m.glide_bars.to_string(), "must be 0..=64")?;
        check((-40.0..=0.0).contains(&m.target_lufs), "mixer.target_lufs", m.target_lufs.to_string(), "must be -40..=0")?;
        check((0.0..=24.0).contains(&m.max_gain_db), "mixer.max_gain_db", m.max_gain_db.to_string(), "must be 0..=24")?;
        check((-12.0..=0.0).contains(&m.ceiling_dbtp), "mixer.ceiling_dbtp", m.ceiling_dbtp.to_string(), "must be -12..=0")?;
        let lib = &self.library;
        check(
            lib.max_track_minutes.is_finite() && (1.0..=600.0).contains(&lib.max_track_minutes),
            "library.max_track_minutes",
            lib.max_track_minutes.to_string(),
            "must be between 1 and 600 minutes",
        )?;
        check(
            lib.rescan_minutes.is_finite() && (0.1..=1440.0).contains(&lib.rescan_minutes),
            "library.rescan_minutes",
            lib.rescan_minutes.to_string(),
            "must be between 0.1 and 1440 minutes",
        )?;
        check(
            lib.min_track_s.is_finite() && (0.0..=600.0).contains(&lib.min_track_s),
            "library.min_track_s",
            lib.min_track_s.to_string(),
            "must be between 0 and 600 seconds",
        )?;
        for out in &self.outputs.icecast {
            if let Err(reason) = out.target() {
                check(false, "outputs.icecast.url", out.url.clone(), &reason)?;
            }
        }
        let o = &self.ordering;
        check(
            !o.plugin.is_empty() && o.plugin.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "ordering.plugin",
            format!("{:?}", o.plugin),
            "must be a plugin name (letters, digits, _ and -), the file name without .rhai",
        )?;
        check(
            o.no_repeat_minutes.is_finite() && (0.0..=10_080.0).contains(&o.no_repeat_minutes),
            "ordering.no_repeat_minutes",
            o.no_repeat_minutes.to_string(),
            "must be between 0 and 10080 (a week)",
        )?;
        if let Some((key, w)) = o.weights.invalid() {
            return Err(ConfigError::Invalid {
                path: self.source.clone(),
                key,
                value: w.to_string(),
                reason: "must be a finite number >= 0".into(),
            });
        }
        let l = &o.limits;
        check(
            (1..=60_000).contains(&l.timeout_ms),
            "ordering.limits.timeout_ms",
            l.timeout_ms.to_string(),
            "must be 1..=60000",
        )?;
        check(
            (1..=1_000_000_000).contains(&l.max_operations),
            "ordering.limits.max_operations",
            l.max_operations.to_string(),
            "must be 1..=1000000000",
        )?;
        check((4..=256).contains(&l.max_call_depth), "ordering.limits.max_call_depth", l.max_call_depth.to_string(), "must be 4..=256")?;
        check(
            l.max_string_size >= 1024,
            "ordering.limits.max_string_size",
            l.max_string_size.to_string(),
            "must be at least 1024",
        )?;
        check(
            l.max_array_size >= 1024,
            "ordering.limits.max_array_size",
            l.max_array_size.to_string(),
            "must be at least 1024 (the candidates array must fit)",
        )?;
        check(
            !self.server.station_name.trim().is_empty(),
            "server.station_name",
            format!("{:?}", self.server.station_name),
            "must not be empty",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn shipped_config_is_valid_and_matches_defaults() {
        let text = include_str!("../config/nonstop.toml");
        let c = parse(text).expect("shipped config parses");
        let d = Config::default();
        assert_eq!(c.stream.bitrate_kbps, d.stream.bitrate_kbps);
        assert_eq!(c.stream.icy_metaint, d.stream.icy_metaint);
        assert_eq!(c.server.listen, d.server.listen);
        assert_eq!(c.queues.pcm_s, d.queues.pcm_s);
        assert_eq!(c.mixer.crossfade_s, d.mixer.crossfade_s);
        assert_eq!(c.ordering.plugin, d.ordering.plugin);
        assert_eq!(c.ordering.rules(), d.ordering.rules());
        assert_eq!(c.ordering.weights, d.ordering.weights);
        assert_eq!(c.ordering.limits, d.ordering.limits);
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let err = parse("[stream]\nbitrat_kbps = 128\n").unwrap_err().to_string();
        assert!(err.contains("test.toml"), "{err}");
        assert!(err.contains("bitrat_kbps"), "{err}");
    }

    #[test]
    fn invalid_value_names_key() {
        let err = parse("[stream]\nbitrate_kbps = 100\n").unwrap_err().to_string();
        assert!(err.contains("stream.bitrate_kbps = 100"), "{err}");
        let err = parse("[stream]\nburst_s = 5.0\nmax_lag_s = 4.0\n").unwrap_err().to_string();
        assert!(err.contains("stream.max_lag_s"), "{err}");
        let err = parse("[ordering]\nplugin = \"../evil\"\n").unwrap_err().to_string();
        assert!(err.contains("ordering.plugin"), "{err}");
        let err = parse("[mixer]\nmin_steady_share = 1.5\n").unwrap_err().to_string();
        assert!(err.contains("mixer.min_steady_share = 1.5"), "{err}");
        let err = parse("[ordering.weights]\nkey = -1.0\n").unwrap_err().to_string();
        assert!(err.contains("ordering.weights.key = -1"), "{err}");
        let err = parse("[ordering.limits]\ntimeout_ms = 0\n").unwrap_err().to_string();
        assert!(err.contains("ordering.limits.timeout_ms"), "{err}");
        let err = parse("[server]\nlisten = \"nowhere\"\n").unwrap_err().to_string();
        assert!(err.contains("listen"), "{err}");
    }
}
