// A test animation: a ball rolls and the light turns with the clock.
#version 3.7;
global_settings { assumed_gamma 1.0 }
#include "colors.inc"
camera { location <0, 2, -5> look_at <0, 0.5, 0> }
light_source { <-5 + 10 * clock, 8, -6> color rgb 1 }
plane { y, 0 pigment { checker White color rgb <0.2, 0.3, 0.6> } }
sphere { <-2 + 4 * clock, 0.6, 0>, 0.6 pigment { radial frequency 8 color_map { [0.5 Red] [0.5 Yellow] } rotate <90, 0, 360 * clock> } }
