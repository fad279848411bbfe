//! Photos at HQ for people: when a photo arrives, a low-priority thread
//! reads its EXIF capture time and GPS (when present) and makes a
//! thumbnail and a screen-size copy (JPEG), off the sync path. The original
//! stays the evidence, byte for byte, in HQ's store; what is derived lives
//! in `<data>/photos/` as `<sha>.json` (what was read), `<sha>-thumb.jpg`
//! and `<sha>-screen.jpg`. A photo that is not a decodable image keeps its
//! original and says so in its `.json`.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use image::DynamicImage;
use serde::{Deserialize, Serialize};
use sync_core::ids::PhotoId;
use utoipa::ToSchema;

/// The longest side of a thumbnail, and of a screen-size copy (pixels).
const THUMB: u32 = 320;
const SCREEN: u32 = 1600;
/// The largest image decoded (pixels per side); a larger one is kept as
/// evidence without copies.
const MAX_SIDE: u32 = 12_000;

/// What HQ read from a photo.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub(crate) struct PhotoMeta {
    /// Whether it decoded as an image (then it has copies).
    pub(crate) decodable: bool,
    /// `jpeg` or `png`.
    pub(crate) format: Option<String>,
    pub(crate) width: Option<u32>,
    pub(crate) height: Option<u32>,
    /// When the camera says it was taken (EXIF: `YYYY-MM-DDTHH:MM:SS`, with
    /// its offset when the camera wrote one).
    pub(crate) taken_at: Option<String>,
    /// Where, from EXIF GPS (WGS-84 degrees).
    pub(crate) lat: Option<f64>,
    pub(crate) lon: Option<f64>,
    /// Why it has no copies (Chinese), if it has none.
    pub(crate) note: Option<String>,
}

/// A derived copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Size {
    Thumb,
    Screen,
}

impl Size {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "thumb" => Some(Size::Thumb),
            "screen" => Some(Size::Screen),
            _ => None,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Size::Thumb => "thumb",
            Size::Screen => "screen",
        }
    }
}

/// Where HQ keeps what it derived from photos.
#[derive(Clone, Debug)]
pub(crate) struct Copies {
    dir: PathBuf,
}

impl Copies {
    pub(crate) fn at(data: &Path) -> Self {
        Copies { dir: data.join("photos") }
    }

    /// What was read from `photo`, once it has been.
    pub(crate) fn meta(&self, photo: &PhotoId) -> Option<PhotoMeta> {
        let bytes = std::fs::read(self.dir.join(format!("{photo}.json"))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The file of a copy of `photo`.
    pub(crate) fn path(&self, photo: &PhotoId, size: Size) -> PathBuf {
        self.dir.join(format!("{photo}-{}.jpg", size.suffix()))
    }

    /// What was read from `photo`, reading the original at `original` and
    /// writing its copies first if that was not done yet (the same bytes
    /// the photo reader writes).
    pub(crate) fn ensure(&self, photo: &PhotoId, original: &Path) -> Result<PhotoMeta> {
        match self.meta(photo) {
            Some(meta) => Ok(meta),
            None => self.derive(photo, original),
        }
    }

    /// Reads the original at `original`, writes its copies, then its
    /// `.json` (last: a photo with a `.json` has all it will have).
    fn derive(&self, photo: &PhotoId, original: &Path) -> Result<PhotoMeta> {
        let bytes = std::fs::read(original).with_context(|| format!("无法读取照片 {}", original.display()))?;
        let (meta, copies) = read(&bytes);
        std::fs::create_dir_all(&self.dir)?;
        if let Some((thumb, screen)) = copies {
            write_atomically(&self.path(photo, Size::Thumb), &thumb)?;
            write_atomically(&self.path(photo, Size::Screen), &screen)?;
        }
        write_atomically(&self.dir.join(format!("{photo}.json")), &serde_json::to_vec(&meta)?)?;
        Ok(meta)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    // A partial name of its own: the photo reader and a briefing may write
    // the same copy at once.
    let partial = path.with_extension(format!("part-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)?;
    Ok(())
}

/// A photo's thumbnail and screen-size copy, as JPEG.
type Derived = (Vec<u8>, Vec<u8>);

/// What a photo's bytes say, and its copies if it decodes.
fn read(bytes: &[u8]) -> (PhotoMeta, Option<Derived>) {
    let (taken_at, lat, lon) = exif_of(bytes);
    let mut meta =
        PhotoMeta { decodable: false, format: None, width: None, height: None, taken_at, lat, lon, note: None };
    let format =
        image::guess_format(bytes).ok().filter(|f| matches!(f, image::ImageFormat::Jpeg | image::ImageFormat::Png));
    let Some(format) = format else {
        meta.note = Some("不是可识别的 JPEG 或 PNG 图像，仅保存原件作为证据".into());
        return (meta, None);
    };
    meta.format = Some(if format == image::ImageFormat::Png { "png" } else { "jpeg" }.into());
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(512 * 1024 * 1024);
    reader.limits(limits);
    let image = match reader.decode() {
        Ok(image) => image,
        Err(error) => {
            // The decoder's words are English: logged, not shown.
            tracing::info!(%error, "photo does not decode");
            meta.note = Some("图像已损坏或不完整，无法显示，仅保存原件作为证据".to_owned());
            return (meta, None);
        }
    };
    meta.decodable = true;
    (meta.width, meta.height) = (Some(image.width()), Some(image.height()));
    let screen = screen(image);
    match (jpeg(&screen.thumbnail(THUMB, THUMB)), jpeg(&screen)) {
        (Ok(thumb), Ok(screen)) => (meta, Some((thumb, screen))),
        (Err(error), _) | (_, Err(error)) => {
            tracing::warn!(%error, "photo copies not encoded");
            meta.decodable = false;
            meta.note = Some("无法生成缩略图，仅保存原件作为证据".to_owned());
            (meta, None)
        }
    }
}

/// The image at most [`SCREEN`] on its longer side, halved (each pixel the
/// mean of a 2 × 2 block) as often as it takes: a camera's 4000 × 3000
/// photo gives 1000 × 750. About 25 ms for 12 MP, where a triangle filter
/// to exactly 1600 took 230 ms; a briefing may wait for dozens of these.
fn screen(image: DynamicImage) -> DynamicImage {
    if image.width().max(image.height()) <= SCREEN {
        return image;
    }
    let mut rgb = image.into_rgb8();
    while rgb.width().max(rgb.height()) > SCREEN {
        rgb = halved(&rgb);
    }
    DynamicImage::ImageRgb8(rgb)
}

/// `image` at half its size, each pixel the mean of a 2 × 2 block.
fn halved(image: &image::RgbImage) -> image::RgbImage {
    let (w, h) = (image.width() / 2, image.height() / 2);
    image::RgbImage::from_fn(w, h, |x, y| {
        let mut sum = [0u32; 3];
        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let p = image.get_pixel(2 * x + dx, 2 * y + dy);
            for c in 0..3 {
                sum[c] += u32::from(p[c]);
            }
        }
        image::Rgb(sum.map(|v| ((v + 2) / 4) as u8))
    })
}

fn jpeg(image: &DynamicImage) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 82);
    image.to_rgb8().write_with_encoder(encoder)?;
    Ok(out)
}

/// EXIF capture time and GPS, when the photo carries them.
fn exif_of(bytes: &[u8]) -> (Option<String>, Option<f64>, Option<f64>) {
    use exif::{In, Tag, Value};
    let Ok(exif) = exif::Reader::new().read_from_container(&mut Cursor::new(bytes)) else {
        return (None, None, None);
    };
    let ascii = |tag| match exif.get_field(tag, In::PRIMARY).map(|f| &f.value) {
        Some(Value::Ascii(parts)) => parts.first().map(|p| String::from_utf8_lossy(p).trim().to_owned()),
        _ => None,
    };
    let taken_at = ascii(Tag::DateTimeOriginal).and_then(|t| {
        let (date, time) = t.split_once(' ')?;
        let date = date.replace(':', "-");
        let valid = date.len() == 10
            && time.len() == 8
            && date.chars().chain(time.chars()).all(|c| c.is_ascii_digit() || c == '-' || c == ':');
        valid.then(|| format!("{date}T{time}{}", ascii(Tag::OffsetTimeOriginal).unwrap_or_default()))
    });
    let degrees = |tag, reference, negative: &str| {
        let Some(Value::Rational(parts)) = exif.get_field(tag, In::PRIMARY).map(|f| &f.value) else {
            return None;
        };
        let part = |i: usize| parts.get(i).filter(|r| r.denom != 0).map(|r| r.to_f64());
        let value = part(0)? + part(1).unwrap_or(0.0) / 60.0 + part(2).unwrap_or(0.0) / 3600.0;
        let sign = if ascii(reference).as_deref() == Some(negative) { -1.0 } else { 1.0 };
        Some(sign * value).filter(|v| v.is_finite())
    };
    let lat = degrees(Tag::GPSLatitude, Tag::GPSLatitudeRef, "S").filter(|v| v.abs() <= 90.0);
    let lon = degrees(Tag::GPSLongitude, Tag::GPSLongitudeRef, "W").filter(|v| v.abs() <= 180.0);
    (taken_at, lat, lon)
}

/// Told what was read from each photo once its copies are written (the
/// read model listens).
pub(crate) type Read = Box<dyn Fn(PhotoId, PhotoMeta) + Send>;

/// The thread that derives copies of arriving photos, at the lowest
/// priority; dropping it lets it finish what waits, then stops it.
pub(crate) struct Deriver {
    queue: Option<mpsc::Sender<PhotoId>>,
    thread: Option<JoinHandle<()>>,
}

impl Deriver {
    /// Starts the thread for HQ's store at `store` (its blobs), writing to
    /// `copies` and telling `read`; first it derives every photo the store
    /// holds that has no `.json` yet (arrived while the server was stopped,
    /// or before this).
    pub(crate) fn start(store: PathBuf, copies: Copies, read: Read) -> Result<Self> {
        let (queue, photos) = mpsc::channel::<PhotoId>();
        let thread = std::thread::Builder::new()
            .name("photo-copies".into())
            .spawn(move || {
                #[cfg(target_os = "linux")]
                if let Err(error) = rustix::process::setpriority_process(None, 19) {
                    tracing::warn!(%error, "photo thread keeps normal priority");
                }
                for photo in held(&store).into_iter().filter(|p| copies.meta(p).is_none()).chain(photos) {
                    let original = field_client::blob_path(&store, &photo.to_string());
                    match copies.derive(&photo, &original) {
                        Ok(meta) => read(photo, meta),
                        Err(error) => tracing::error!(%photo, error = format!("{error:#}"), "photo copies not made"),
                    }
                }
            })
            .context("无法启动照片处理线程")?;
        Ok(Deriver { queue: Some(queue), thread: Some(thread) })
    }

    /// A photo is now held, verified.
    pub(crate) fn arrived(&self, photo: &PhotoId) {
        if let Some(queue) = &self.queue {
            let _ = queue.send(*photo);
        }
    }
}

impl Drop for Deriver {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Every complete photo in the store's blobs.
fn held(store: &Path) -> Vec<PhotoId> {
    let mut out = Vec::new();
    let mut stack = vec![store.join("blobs")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && entry.file_name() != "partial" {
                stack.push(path);
            } else if let Some(photo) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse().ok()) {
                out.push(photo);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_png_gets_copies_and_bytes_that_are_no_image_say_so() {
        let image = image::RgbImage::from_fn(2000, 1000, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
        let mut png = Vec::new();
        DynamicImage::ImageRgb8(image).write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let (meta, copies) = read(&png);
        assert_eq!(
            (meta.decodable, meta.format.as_deref(), meta.width, meta.height),
            (true, Some("png"), Some(2000), Some(1000))
        );
        let (thumb, screen) = copies.expect("copies");
        let thumb = image::load_from_memory(&thumb).unwrap();
        let screen = image::load_from_memory(&screen).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (320, 160));
        assert_eq!((screen.width(), screen.height()), (1000, 500), "halved until at most 1600");

        let (meta, copies) = read(b"\xff\xd8\xff\xe0 not really a jpeg");
        assert!(!meta.decodable && copies.is_none());
        assert!(meta.note.as_deref().is_some_and(|n| n.contains("原件")), "{meta:?}");
        let (meta, _) = read(b"plain text");
        assert!(meta.note.as_deref().is_some_and(|n| n.contains("不是可识别")), "{meta:?}");
    }

    /// At start the thread catches up on photos the store holds without a
    /// `.json` (arrived while the server was stopped); partial copies are
    /// not photos.
    #[test]
    fn photos_held_before_the_start_are_read_at_the_start() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = dir.path().join("sync");
        let bytes = b"\xff\xd8 held while stopped".to_vec();
        let sha = sync_core::ids::sha256_hex(&bytes);
        let original = field_client::blob_path(&store, &sha);
        std::fs::create_dir_all(original.parent().unwrap()).unwrap();
        std::fs::write(&original, &bytes).unwrap();
        std::fs::create_dir_all(store.join("blobs/partial")).unwrap();
        std::fs::write(store.join("blobs/partial").join("f".repeat(64)), b"half").unwrap();
        let copies = Copies::at(dir.path());
        let (told, heard) = mpsc::channel();
        let read: Read = Box::new(move |photo, meta| told.send((photo, meta)).unwrap());
        drop(Deriver::start(store, copies.clone(), read).unwrap());
        let meta = copies.meta(&sha.parse().unwrap()).expect("read at the start");
        assert!(!meta.decodable, "{meta:?}");
        assert_eq!(heard.try_iter().collect::<Vec<_>>(), [(sha.parse().unwrap(), meta)], "the read model is told");
        assert!(copies.meta(&"f".repeat(64).parse().unwrap()).is_none(), "a partial copy is no photo");
    }

    /// A JPEG whose EXIF says when and where it was taken, as a tablet's
    /// camera writes it.
    #[test]
    fn exif_capture_time_and_gps_are_read() {
        use exif::{Field, In, Rational, Tag, Value};
        let mut jpeg = Vec::new();
        let image = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(64, 48, image::Rgb([200, 100, 50])));
        image.write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
        let ascii =
            |tag, text: &str| Field { tag, ifd_num: In::PRIMARY, value: Value::Ascii(vec![text.as_bytes().to_vec()]) };
        let dms = |tag, d: u32, m: u32, s: u32| Field {
            tag,
            ifd_num: In::PRIMARY,
            value: Value::Rational([d, m, s].map(|n| Rational { num: n, denom: 1 }).to_vec()),
        };
        let fields = [
            ascii(Tag::DateTimeOriginal, "2026:11:24 09:30:00"),
            ascii(Tag::OffsetTimeOriginal, "+08:00"),
            dms(Tag::GPSLatitude, 38, 28, 48),
            ascii(Tag::GPSLatitudeRef, "N"),
            dms(Tag::GPSLongitude, 106, 13, 48),
            ascii(Tag::GPSLongitudeRef, "E"),
        ];
        let mut writer = exif::experimental::Writer::new();
        for field in &fields {
            writer.push_field(field);
        }
        let mut tiff = Cursor::new(Vec::new());
        writer.write(&mut tiff, false).unwrap();
        let tiff = tiff.into_inner();
        // APP1 "Exif" right after the start of image.
        let length = u16::try_from(2 + 6 + tiff.len()).unwrap().to_be_bytes();
        let app1 = [&[0xFF, 0xE1], &length[..], b"Exif\0\0", &tiff].concat();
        jpeg.splice(2..2, app1);
        let (meta, copies) = read(&jpeg);
        assert!(meta.decodable && copies.is_some(), "{meta:?}");
        assert_eq!(meta.taken_at.as_deref(), Some("2026-11-24T09:30:00+08:00"));
        let (lat, lon) = (meta.lat.unwrap(), meta.lon.unwrap());
        assert!((lat - 38.48).abs() < 1e-6 && (lon - 106.23).abs() < 1e-6, "{lat} {lon}");
    }
}
