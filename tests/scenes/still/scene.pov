// A test still: local include, an image map from a subfolder, text, sharp
// edges for antialiasing to work on, and open sky for +UA's alpha.
#version 3.7;
global_settings { assumed_gamma 1.0 }
#include "colors.inc"
#include "props.inc"

camera { location <0, 2.2, -6> look_at <0, 0.6, 0> angle 48 }
light_source { <-8, 12, -10> color rgb 1 }

plane { y, 0 pigment { checker color rgb <0.9, 0.9, 0.85> color rgb <0.15, 0.2, 0.35> scale 0.5 } }
box {
  <-1, 0, -1>, <1, 2, 1>
  pigment { image_map { png "textures/tile.png" interpolate 2 } scale 2 translate <-1, 0, 0> }
  rotate y * 30 translate <-1.6, 0, 1>
}
object { Gem translate <1.4, 0.9, 0> }
text { ttf "timrom.ttf" "povfarm" 0.2, 0 pigment { Orange } scale 0.6 translate <-1.2, 0.05, -1.6> }
