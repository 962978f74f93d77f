// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// gipc: child processes and inter-process communication for Boost.Fiber programs.
/// The umbrella header: include this one.

#include <gipc/error.hpp>
#include <gipc/net.hpp>
#include <gipc/pipe.hpp>
#include <gipc/pool.hpp>
#include <gipc/process.hpp>
#include <gipc/program.hpp>
#include <gipc/runtime.hpp>
