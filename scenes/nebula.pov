// povfarm's show-off scene: a glowing emission nebula off-centre behind a
// ringed planet. The media makes the nebula's rows far dearer than the rest,
// which is what a render farm's scheduling must cope with.
#version 3.7;
global_settings { assumed_gamma 1.0 max_trace_level 8 }

#include "colors.inc"
#include "nebula_parts.inc"

camera {
  location <0, 1.2, -9>
  look_at <0, 0.4, 0>
  angle 50
}

light_source { <-30, 20, -25> color rgb <1.0, 0.96, 0.9> }

// Deep space with faint stars.
sky_sphere {
  pigment {
    granite
    color_map {
      [0.00 color rgb 0]
      [0.80 color rgb 0]
      [0.86 color rgb 0.6]
      [1.00 color rgb 1]
    }
    scale 0.02
  }
}

object { Nebula translate <2.6, 1.6, 6> }
object { RingedPlanet rotate <0, 0, -18> translate <-1.6, -0.2, 0> }
object { Moon translate <1.2, -1.4, -2> }
