//! SVG to PNG with resvg, drawing text with the fonts the app's window uses
//! (egui's bundled Ubuntu Light and Hack, from `epaint_default_fonts`), so
//! exported pictures look the same on every machine, with no system fonts.

use std::sync::{Arc, OnceLock};

use resvg::tiny_skia::{Pixmap, Transform};
use resvg::usvg::{self, fontdb};

/// Pixels per SVG unit in exported PNGs (sharp on high-density screens).
pub const SCALE: f32 = 2.0;

pub use crate::error::RasterError;

/// The window's fonts, loaded once; `sans-serif` is Ubuntu Light and
/// `monospace` Hack.
fn fonts() -> Arc<fontdb::Database> {
    static DB: OnceLock<Arc<fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = fontdb::Database::new();
        db.load_font_data(epaint_default_fonts::UBUNTU_LIGHT.to_vec());
        let sans = family(&db).unwrap_or_else(|| "Ubuntu".into());
        db.load_font_data(epaint_default_fonts::HACK_REGULAR.to_vec());
        db.set_sans_serif_family(sans);
        db.set_monospace_family("Hack");
        Arc::new(db)
    })
    .clone()
}

/// The family name of the first font in `db`.
fn family(db: &fontdb::Database) -> Option<String> {
    db.faces().next()?.families.first().map(|(n, _)| n.clone())
}

/// Options that parse SVG with the window's fonts (what [`rasterise`] uses;
/// tests parse with them too).
pub fn options() -> usvg::Options<'static> {
    let fontdb = fonts();
    usvg::Options {
        font_family: family(&fontdb).unwrap_or_else(|| "Ubuntu".into()),
        fontdb,
        ..Default::default()
    }
}

/// `svg` drawn at `scale` pixels per unit, as PNG bytes.
pub fn rasterise(svg: &str, scale: f32) -> Result<Vec<u8>, RasterError> {
    let tree = usvg::Tree::from_str(svg, &options())?;
    let size = tree.size().to_int_size().scale_by(scale);
    let (width, height) = size.map_or((0, 0), |s| (s.width(), s.height()));
    let mut pixmap = Pixmap::new(width, height).ok_or(RasterError::Size { width, height })?;
    resvg::render(
        &tree,
        Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    Ok(pixmap.encode_png()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_drawn_with_the_bundled_fonts() {
        let svg = |text: &str| {
            format!(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"60\" height=\"20\"><rect width=\"60\" height=\"20\" fill=\"#fff\"/><text x=\"2\" y=\"15\" font-family=\"sans-serif\" font-size=\"14\">{text}</text></svg>"
            )
        };
        let dark = |png: &[u8]| {
            let p = Pixmap::decode_png(png).unwrap();
            assert_eq!((p.width(), p.height()), (120, 40));
            p.pixels().iter().filter(|c| c.red() < 128).count()
        };
        assert_eq!(dark(&rasterise(&svg(""), 2.0).unwrap()), 0);
        assert!(
            dark(&rasterise(&svg("Shears"), 2.0).unwrap()) > 50,
            "no text drawn"
        );
        assert!(matches!(rasterise("<svg", 1.0), Err(RasterError::Svg(_))));
    }
}
