// CloudFront Functions (cloudfront-js-2.0), viewer request: format negotiation for renditions.
//
// A URI whose last segment ends in ".auto" names one rendition stored in three formats that
// differ only by extension. Its ".auto" becomes ".avif" when Accept lists image/avif, else
// ".webp" when it lists image/webp, else ".jpg"; a media range with q=0 is a refusal, and
// wildcards (image/*, */*) choose nothing but JPEG. Accept is then set to the chosen type
// alone, so the cache key (which includes Accept) has at most three values. Every other URI
// passes unchanged. infra/template.yaml carries this file verbatim as the NegotiateFormat
// function's FunctionCode (a test keeps the two equal); the local stack runs it under Node.

var SUFFIX = ".auto";
var CHOICES = [
  ["image/avif", ".avif"],
  ["image/webp", ".webp"],
];
var FALLBACK = ["image/jpeg", ".jpg"];

function acceptValue(headers) {
  var header = headers.accept;
  if (!header) return "";
  if (header.multiValue) {
    return header.multiValue.map(function (entry) { return entry.value; }).join(",");
  }
  return header.value || "";
}

// The media types that Accept lists with a quality above zero, lower-cased.
function acceptedTypes(accept) {
  var types = {};
  var ranges = accept.toLowerCase().split(",");
  for (var i = 0; i < ranges.length; i++) {
    var parts = ranges[i].split(";");
    var type = parts[0].trim();
    var quality = 1;
    for (var j = 1; j < parts.length; j++) {
      var param = parts[j].trim();
      if (param.indexOf("q=") === 0) quality = parseFloat(param.slice(2));
    }
    if (type && !(quality <= 0) && !isNaN(quality)) types[type] = true;
  }
  return types;
}

function choose(accept) {
  var types = acceptedTypes(accept);
  for (var i = 0; i < CHOICES.length; i++) {
    if (types[CHOICES[i][0]]) return CHOICES[i];
  }
  return FALLBACK;
}

function handler(event) {
  var request = event.request;
  var uri = request.uri;
  var last = uri.slice(uri.lastIndexOf("/") + 1);
  if (last.length <= SUFFIX.length || last.slice(-SUFFIX.length) !== SUFFIX) return request;
  var chosen = choose(acceptValue(request.headers));
  request.uri = uri.slice(0, -SUFFIX.length) + chosen[1];
  request.headers.accept = { value: chosen[0] };
  return request;
}
