// SPDX-License-Identifier: MIT
#include "win_errors.hpp"

#include <cerrno>

namespace gipc::detail::win {

int errno_of(DWORD error) noexcept
{
    switch (error) {
    case ERROR_BROKEN_PIPE:
    case ERROR_NO_DATA:
    case ERROR_PIPE_NOT_CONNECTED:
        return -EPIPE;
    case ERROR_INVALID_HANDLE:
        return -EBADF;
    case ERROR_ACCESS_DENIED:
        return -EACCES;
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_MOD_NOT_FOUND:
        return -ENOENT;
    case ERROR_BAD_EXE_FORMAT:
    case ERROR_EXE_MACHINE_TYPE_MISMATCH:
        return -ENOEXEC;
    case ERROR_INVALID_PARAMETER:
    case ERROR_INVALID_USER_BUFFER:
        return -EINVAL;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_NO_SYSTEM_RESOURCES:
    case ERROR_COMMITMENT_LIMIT:
    case ERROR_NOT_ENOUGH_QUOTA:
        return -ENOMEM;
    case ERROR_TOO_MANY_OPEN_FILES:
        return -EMFILE;
    case ERROR_PIPE_BUSY:
        return -EBUSY;
    default:
        return -EIO;
    }
}

} // namespace gipc::detail::win
