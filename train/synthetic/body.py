"""The wooden mannequin's body: its proportions in meters, shared by the motion generator and the renderer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MannequinBody:
    """The mannequin's proportions in meters (a 1.75 m figure).

    Lengths place the joints (motion generator); widths and radii shape the rendered parts (renderer). The
    renderer converts meters to pixels with a per-frame scale estimated from the pose's bone lengths.
    """

    spine_m: float = 0.50  # mid-hip to neck
    shoulder_half_width_m: float = 0.19
    hip_half_width_m: float = 0.10
    upper_arm_m: float = 0.29
    forearm_m: float = 0.26
    thigh_m: float = 0.44
    shin_m: float = 0.43
    hip_height_m: float = 0.95  # standing, mid-hip above the floor
    # Head offsets from the neck, in the head's frame (right, up, forward).
    head_center_m: tuple[float, float, float] = (0.0, 0.19, 0.0)
    nose_m: tuple[float, float, float] = (0.0, 0.17, 0.10)
    eye_m: tuple[float, float, float] = (0.032, 0.205, 0.085)  # right eye; the left mirrors x
    ear_m: tuple[float, float, float] = (0.075, 0.19, 0.0)
    # Feet, relative to the ankle in the shin's frame (along the foot, along the shin).
    toe_m: tuple[float, float] = (0.15, 0.05)
    heel_m: tuple[float, float] = (-0.05, 0.06)
    # Rendered shapes: radii (capsule ends) and ellipse semi-axes.
    head_semi_axes_m: tuple[float, float] = (0.125, 0.10)  # along the head's up, across
    nose_radius_m: float = 0.028
    eye_radius_m: float = 0.013
    neck_radius_m: float = 0.048
    chest_top_below_neck_m: float = 0.11
    chest_bottom_below_neck_m: float = 0.30
    chest_min_half_width_m: float = 0.10
    pelvis_semi_length_m: float = 0.13
    pelvis_min_half_width_m: float = 0.11
    waist_radius_m: float = 0.095
    shoulder_ball_m: float = 0.058
    upper_arm_radii_m: tuple[float, float] = (0.052, 0.042)
    elbow_ball_m: float = 0.043
    forearm_radii_m: tuple[float, float] = (0.038, 0.030)
    wrist_ball_m: float = 0.030
    hand_semi_axes_m: tuple[float, float] = (0.085, 0.042)
    thigh_radii_m: tuple[float, float] = (0.078, 0.058)
    knee_ball_m: float = 0.058
    shin_radii_m: tuple[float, float] = (0.054, 0.042)
    shoe_radius_m: float = 0.042

    @property
    def height_m(self) -> float:
        """Floor to the top of the head."""
        return self.hip_height_m + self.spine_m + self.head_center_m[1] + self.head_semi_axes_m[0]


BODY = MannequinBody()
