// A radiograph's markers from its header (imaging/pixels.py view_markers): the
// orientation letters at the image edges from PatientOrientation (the patient
// directions of the rows and the columns), and the view (PA, AP, LL...) with the
// laterality (L or R) of the imaged part. Cross-sectional series take their edge
// letters from ImageOrientationPatient instead (SeriesGeometry.markers()).

const OPPOSITE = { L: "R", R: "L", A: "P", P: "A", H: "F", F: "H" };

/** The opposite patient direction of a PatientOrientation value ("LP" -> "RA"). */
export function oppositeDirection(text) {
  return [...String(text || "")].map((c) => OPPOSITE[c] || "").join("");
}

/** Edge letters {left, right, top, bottom} from a frame header's `view`, or null. */
export function edgeMarkers(view) {
  const o = view && view.orientation;
  if (!Array.isArray(o) || o.length !== 2 || !o[0] || !o[1]) return null;
  return { right: o[0], left: oppositeDirection(o[0]), bottom: o[1], top: oppositeDirection(o[1]) };
}

/** "PA · L": the view position and the laterality, as the header gives them ("" when neither). */
export function viewText(view) {
  if (!view) return "";
  return [view.position, view.laterality].filter(Boolean).join(" · ");
}
