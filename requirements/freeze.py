"""Print `name==version` for every distribution pip installed into this environment (for lock.txt).

Not `pip freeze`: the ROS wheels also drop setuptools egg-info folders (rclpy, std_msgs, ...) into
site-packages, which pip freeze reports as distributions that no index has; and our own interface build
adds one for `blendclip`. Only dist-info folders that pip wrote (INSTALLER) and that are not editable
count.
"""

import json
import sys
from importlib import metadata

SKIP = {'pip'}


def pins() -> list[str]:
    out = {}
    for dist in metadata.distributions():
        path = getattr(dist, '_path', None)
        if path is None or not str(path).endswith('.dist-info'):
            continue
        if (dist.read_text('INSTALLER') or '').strip() != 'pip':
            continue
        direct = json.loads(dist.read_text('direct_url.json') or '{}')
        if direct.get('dir_info', {}).get('editable'):
            continue
        name = dist.metadata['Name']
        if name.lower() not in SKIP:
            out[name.lower()] = f'{name}=={dist.version}'
    return [out[k] for k in sorted(out)]


if __name__ == '__main__':
    sys.stdout.write('\n'.join(pins()) + '\n')
